"""Share metrics with their counts: an error rate, a login failure rate, a decline rate.

A share over a handful of observations says little (one failed login of two is not a 50 %
failure rate); the same share over hundreds is a storm. With ``shop.metric.count`` the
rule judges a share by how likely its outcomes are under the series' usual share.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.metrics import MetricAnomalyDetector, Share
from shopwatch.detect.state import KeyedState

from .helpers import run, shipped

START = datetime(2026, 3, 2, tzinfo=UTC)


@pytest.fixture(scope="module")
def detector() -> MetricAnomalyDetector:
    found = shipped("apm.metric_anomaly")
    assert isinstance(found, MetricAnomalyDetector)
    return found


def _samples(
    counts: np.ndarray, hits: np.ndarray, *, name: str = "auth.login_failure_rate", at: int = 0
) -> pl.DataFrame:
    n = len(counts)
    value = np.where(counts > 0, hits / np.maximum(counts, 1), 0.0)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [START + timedelta(minutes=at + i) for i in range(n)],
                "event.id": [f"{name}-{at + i}" for i in range(n)],
                "event.dataset": ["apm.metric"] * n,
                "service.name": ["storefront"] * n,
                "host.name": ["web-1"] * n,
                "shop.metric.name": [name] * n,
                "shop.metric.value": value.round(4).tolist(),
                "shop.metric.count": counts.tolist(),
            }
        )
    )


def _logins(rng: np.random.Generator, minutes: int, at: int = 0) -> tuple[np.ndarray, ...]:
    """A small shop's logins: a daily curve from ~0 at night to a dozen a minute, 8 %
    of them mistyped (as the simulator's customers do)."""
    t = np.arange(at, at + minutes)
    rate = 6.0 * (1.0 - np.cos(2 * np.pi * (t % 1440) / 1440))
    counts = rng.poisson(rate)
    return counts, rng.binomial(counts, 0.08)


def test_a_share_scores_by_how_likely_its_outcomes_are() -> None:
    usual = (300.0, 10_000.0)  # a 3 % failure share
    ordinary = [Share(k / n, n, *usual).score for n, k in ((2, 0), (30, 1), (300, 9))]
    assert all(abs(z) < 1.5 for z in ordinary)
    assert Share(0.5, 2, *usual).score < 2.5  # one of two: not much
    assert Share(0.5, 300, *usual).score > 15  # 150 of 300: a storm
    assert Share(0.0, 300, *usual).score < -3  # none of 300: fewer than usual
    assert Share(0.03, 300, *usual).learnt(5_000) == pytest.approx((150.0, 5_000.0), rel=0.01)


def test_small_counts_at_night_are_quiet_and_a_storm_fires(
    detector: MetricAnomalyDetector,
) -> None:
    rng = np.random.default_rng(11)
    counts, hits = _logins(rng, 3 * 1440)
    state = KeyedState(detector.keys)
    # Three days of a small shop: minutes with one failed login of one or two at night.
    assert ((hits == counts) & (counts > 0)).sum() > 20
    assert run(detector, [_samples(counts, hits)], state).height == 0
    # A stuffing run: 40 logins a minute, 70 % failing, for ten minutes (an alert needs
    # five minutes of it: a blip is no incident).
    storm_counts = np.full(10, 40)
    storm = _samples(storm_counts, rng.binomial(storm_counts, 0.7), at=3 * 1440)
    alerts = run(detector, [storm], state)
    assert alerts.height >= 1
    first = alerts.row(0, named=True)
    details = json.loads(first["details"])
    assert details["feature"] in {"value", "level"} and details["usual_share"] < 0.12
    assert alerts.row(0, named=True)["@timestamp"] >= START + timedelta(minutes=3 * 1440 + 5)
    assert details["members"] == {"shop.metric.name": ["auth.login_failure_rate"]}
    assert " of " in first["message"] and "usual share" in first["message"]


def test_without_counts_a_share_is_taken_as_it_is(detector: MetricAnomalyDetector) -> None:
    """A shop that sends no counts keeps the plain model: a jump of its error rate fires."""
    rng = np.random.default_rng(4)
    counts = np.full(600, 300)
    hits = np.concatenate([rng.binomial(300, 0.003, 590), np.full(10, 60)])
    bare = _samples(counts, hits, name="http.error_rate").drop("shop.metric.count")
    alerts = run(detector, [bare])
    assert alerts.height >= 1
    assert "count" not in json.loads(alerts.row(0, named=True)["details"])


def test_what_alarmed_does_not_teach_the_usual_share(detector: MetricAnomalyDetector) -> None:
    rng = np.random.default_rng(5)
    counts, hits = _logins(rng, 2 * 1440)
    state = KeyedState(detector.keys)
    run(detector, [_samples(counts, hits)], state)
    before = state.table("series", {}).row(0, named=True)
    storm_counts = np.full(30, 200)
    run(detector, [_samples(storm_counts, storm_counts // 2, at=2 * 1440)], state)
    after = state.table("series", {}).row(0, named=True)
    usual_before = before["_hits"] / before["_trials"]
    usual_after = after["_hits"] / after["_trials"]
    # an attacker holding the rate up for half an hour moves the usual share little
    assert usual_after < usual_before + 0.02


def test_a_share_of_nothing_is_skipped_and_old_state_loads(
    detector: MetricAnomalyDetector,
) -> None:
    rng = np.random.default_rng(2)
    counts, hits = _logins(rng, 600)
    state = KeyedState(detector.keys)
    run(detector, [_samples(counts, hits)], state)
    table = state.table("series", {})
    learnt = table["_points"][0]
    assert learnt == int((counts > 0).sum())  # minutes with no login taught nothing
    # a state saved before shares were counted (no such columns) still loads and learns
    state.put("series", table.drop("_hits", "_trials"))
    more_counts, more_hits = _logins(rng, 60, at=600)
    run(detector, [_samples(more_counts, more_hits, at=600)], state)
    assert state.table("series", {})["_trials"][0] > 0
