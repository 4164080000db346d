"""Kind ``metric_anomaly``: harmful directions, state across batches, what it reports."""

from __future__ import annotations

import json
from datetime import timedelta

import polars as pl
import pytest

from shopwatch.detect.metrics import MetricAnomalyDetector
from shopwatch.detect.state import KeyedState

from .helpers import CASES, read_events, run, shipped

CASE = CASES / "apm.metric_anomaly"


@pytest.fixture(scope="module")
def detector() -> MetricAnomalyDetector:
    found = shipped("apm.metric_anomaly")
    assert isinstance(found, MetricAnomalyDetector)
    return found


@pytest.fixture(scope="module")
def fires() -> pl.DataFrame:
    return read_events(CASE / "fires.jsonl")


@pytest.mark.parametrize(
    ("metric", "harm"),
    [
        ("checkout.latency.p95_ms", "up"),
        ("http.error_rate", "up"),
        ("payments.decline_rate", "up"),
        ("auth.login_failure_rate", "up"),
        ("orders.per_min", "down"),
        ("http.requests", "down"),
        ("checkout.conversion", "down"),
        ("orders.revenue", "down"),
        ("queue.depth", "both"),
        ("http.requests.5xx", "up"),
        ("checkout.failed_requests", "up"),
        ("requests.timeout_rate", "up"),
        ("revenue.refunds", "up"),
        ("orders.count", "down"),
        ("orders.per_hour", "down"),
        ("Checkout.Latency", "up"),
    ],
)
def test_harmful_direction_by_metric_name(
    detector: MetricAnomalyDetector, metric: str, harm: str
) -> None:
    assert detector.harm_of(metric) == harm


def test_alerts_do_not_depend_on_how_samples_are_cut_into_batches(
    detector: MetricAnomalyDetector, fires: pl.DataFrame
) -> None:
    whole = run(detector, [fires])
    state = KeyedState(detector.keys)
    cut = [fires.slice(i, 700) for i in range(0, fires.height, 700)]
    parts = run(detector, cut, state)
    assert whole.height == 3
    assert parts.select("alert.id", "message").equals(whole.select("alert.id", "message"))


def test_the_alert_names_the_series_its_usual_and_the_feature(
    detector: MetricAnomalyDetector, fires: pl.DataFrame
) -> None:
    alerts = run(detector, [fires]).sort("@timestamp")
    first = alerts.row(0, named=True)
    details = json.loads(first["details"])
    assert first["entity"]["service.name"] == "storefront"
    assert details["keys"] == {
        "service.name": "storefront",
        "host.name": "web-1",
        "shop.metric.name": "checkout.latency.p95_ms",
    }
    assert first["entity"]["host.name"] == "web-1"
    assert details["direction"] == "up" and details["feature"] in {"value", "level", "daily"}
    lo, hi = details["usual_p5_p95"]
    assert lo < hi < details["value"]
    assert "its usual is" in first["message"] and first["rule.category"] == "anomaly"
    assert 40 <= first["risk_score"] <= 90


def test_a_harmless_direction_is_learnt_not_alerted(detector: MetricAnomalyDetector) -> None:
    benign = read_events(CASE / "benign.jsonl")
    # The flash sale's orders score high, upwards: the model sees it, the rule stays quiet.
    assert run(detector, [benign]).height == 0
    both = MetricAnomalyDetector(detector.spec.model_copy(update={"harm": {}}))
    alerts = run(both, [benign])
    keys = {json.loads(d)["keys"]["shop.metric.name"] for d in alerts["details"].to_list()}
    assert "orders.per_min" in keys or "http.requests" in keys


def test_a_blip_is_no_incident_and_a_shift_that_holds_is(
    detector: MetricAnomalyDetector,
) -> None:
    """A harmful score must hold five minutes (on three samples or more) before it alerts."""
    import numpy as np

    rng = np.random.default_rng(6)
    base = _latency("web-1", 100.0, 700, rng)
    idx = pl.int_range(pl.len())

    def shifted(first: int, minutes: int) -> pl.DataFrame:
        return base.with_columns(
            pl.when(idx.is_between(first, first + minutes - 1))
            .then(pl.col("shop.metric.value") * 8)
            .otherwise(pl.col("shop.metric.value"))
            .alias("shop.metric.value")
        )

    assert run(detector, [shifted(500, 3)]).height == 0  # three minutes, then gone
    alerts = run(detector, [shifted(500, 30)])
    assert alerts.height == 1
    at = alerts.row(0, named=True)["@timestamp"]
    assert at >= base["@timestamp"][500] + timedelta(minutes=5)
    once = MetricAnomalyDetector(detector.spec.model_copy(update={"persist": "0s"}))
    assert run(once, [shifted(500, 3)]).height == 1  # without it, the blip alerts


def test_model_summary_reports_series_and_bytes(
    detector: MetricAnomalyDetector, fires: pl.DataFrame
) -> None:
    state = KeyedState(detector.keys)
    run(detector, [fires], state)
    summary = detector.model_summary(state)
    assert summary["entities"] == 3 and summary["events"] == fires.height
    assert 0 < summary["model_bytes"] < 3 * 500_000


def _latency(host: str | None, level: float, n: int, rng) -> pl.DataFrame:
    from datetime import UTC, datetime, timedelta

    from shopwatch.contract import conform

    start = datetime(2026, 3, 1, tzinfo=UTC)
    rows = {
        "@timestamp": [start + timedelta(minutes=i) for i in range(n)],
        "event.id": [f"{host}-{i}" for i in range(n)],
        "event.dataset": ["apm.metric"] * n,
        "service.name": ["storefront"] * n,
        "shop.metric.name": ["http.latency.p95_ms"] * n,
        "shop.metric.value": list(level * rng.lognormal(0, 0.05, n)),
    }
    if host is not None:
        rows["host.name"] = [host] * n
    return conform(pl.DataFrame(rows))


def test_hosts_reporting_one_metric_are_separate_series(detector: MetricAnomalyDetector) -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    # A fast and a slow host, interleaved: one series would see two levels and alarm.
    both = pl.concat([_latency("web-1", 100.0, 600, rng), _latency("web-2", 400.0, 600, rng)])
    state = KeyedState(detector.keys)
    assert run(detector, [both.sort("@timestamp")], state).height == 0
    assert detector.model_summary(state)["entities"] == 2


def test_samples_without_a_host_are_one_series_of_their_service(
    detector: MetricAnomalyDetector,
) -> None:
    import numpy as np

    rng = np.random.default_rng(4)
    frame = _latency(None, 100.0, 600, rng).drop("host.name", strict=False)
    spike = frame.with_columns(  # twenty minutes of a fiftyfold latency
        pl.when(pl.int_range(pl.len()).is_between(500, 519))
        .then(pl.lit(5000.0))
        .otherwise(pl.col("shop.metric.value"))
        .alias("shop.metric.value")
    )
    state = KeyedState(detector.keys)
    alerts = run(detector, [spike], state)
    assert alerts.height == 1 and alerts.row(0, named=True)["entity"]["host.name"] is None
    assert json.loads(alerts["details"][0])["keys"]["host.name"] == ""
