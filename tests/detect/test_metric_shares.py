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
    # learning adds the sample to the usual, the older outcomes faded by the time between
    assert Share(0.03, 300, *usual).learnt(0, 3600) == pytest.approx((309.0, 10_300.0))
    assert Share(0.03, 300, *usual).learnt(3600, 3600) == pytest.approx((159.0, 5_300.0))


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
    # a state saved before shares were counted (no such columns) still loads; its model,
    # which learnt raw shares, starts afresh on the first counted one
    state.put("series", table.drop("_hits", "_trials", "_recent"))
    more_counts, more_hits = _logins(rng, 60, at=600)
    run(detector, [_samples(more_counts, more_hits, at=600)], state)
    again = state.table("series", {})
    assert again["_trials"][0] > 0
    assert again["_points"][0] == int((more_counts > 0).sum())


def _night(rng: np.random.Generator, minutes: int) -> tuple[np.ndarray, np.ndarray]:
    """A sparse series: one to three authorizations a minute, 0.3 % of them slow."""
    counts = rng.integers(1, 4, minutes)
    return counts, rng.binomial(counts, 0.003)


def test_one_slow_request_of_one_is_expected_not_evidence(
    detector: MetricAnomalyDetector,
) -> None:
    """After a day of fast authorizations, a minute with its one request slow: unlikely
    (three standard scores), and yet about once a day by chance."""
    rng = np.random.default_rng(9)
    counts, hits = _night(rng, 1440)
    hits[:] = 0
    lone = np.zeros(20, dtype=int)
    lone[0] = 1
    frames = [
        _samples(counts, hits, name="gateway.slow_share"),
        _samples(np.ones(20, dtype=int), lone, name="gateway.slow_share", at=1440),
    ]
    assert run(detector, frames).height == 0
    bare = MetricAnomalyDetector(detector.spec.model_copy(update={"persist": "0s"}))
    assert run(bare, frames).height == 0  # the floor, not the persistence, keeps it quiet


def test_a_share_raised_step_by_step_cannot_carry_the_usual_along(
    detector: MetricAnomalyDetector,
) -> None:
    """A busy shop's error rate raised from 1 % a little each minute, each step short of
    an alarm on its own: the usual share stays put and the drift alerts."""
    rng = np.random.default_rng(12)
    n = 50_000
    quiet = np.full(600, n)
    base = _samples(quiet, rng.binomial(quiet, 0.01), name="http.error_rate")
    ramp = 0.01 + 0.0015 * np.arange(1, 121)  # +3 standard scores a minute at 50,000
    steps = np.full(120, n)
    rising = _samples(steps, rng.binomial(steps, ramp), name="http.error_rate", at=600)
    alerts = run(detector, [base, rising])
    assert alerts.height >= 1
    assert alerts.row(0, named=True)["@timestamp"] < START + timedelta(minutes=600 + 60)


def _gateway_latency(value: np.ndarray) -> pl.DataFrame:
    """One-minute gateway p95 samples of ``value``."""
    minutes = len(value)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [START + timedelta(minutes=i) for i in range(minutes)],
                "event.id": [f"g{i}" for i in range(minutes)],
                "event.dataset": ["apm.metric"] * minutes,
                "service.name": ["payments"] * minutes,
                "host.name": ["app-1"] * minutes,
                "shop.metric.name": ["gateway.latency.p95_ms"] * minutes,
                "shop.metric.value": value.tolist(),
            }
        )
    )


def test_a_flapping_latency_is_one_incident(detector: MetricAnomalyDetector) -> None:
    """Four minutes eight times slower, six normal, again and again: a duty cycle under
    half does not slip under the five minutes a score must hold."""
    rng = np.random.default_rng(13)
    minutes = 1200
    value = 100 * rng.lognormal(0, 0.1, minutes)
    on = (np.arange(minutes) >= 600) & (np.arange(minutes) % 10 < 4)
    value[on] *= 8
    alerts = run(detector, [_gateway_latency(value)])
    assert alerts.height >= 1
    assert alerts.row(0, named=True)["@timestamp"] < START + timedelta(minutes=630)


def test_two_lone_harmful_samples_an_hour_apart_are_no_hold(
    detector: MetricAnomalyDetector,
) -> None:
    rng = np.random.default_rng(14)
    minutes = 900
    value = 100 * rng.lognormal(0, 0.1, minutes)
    value[[600, 660]] = 5000.0
    assert run(detector, [_gateway_latency(value)]).height == 0


def test_odd_counts_and_values_are_skipped_not_fatal(detector: MetricAnomalyDetector) -> None:
    rng = np.random.default_rng(15)
    counts, hits = _logins(rng, 300)
    frame = _samples(counts, hits)
    odd = frame.head(4).with_columns(
        pl.Series("shop.metric.count", [0.3, float("nan"), 5.0, 5.0]).cast(pl.Float64),
        pl.Series("shop.metric.value", [0.5, 0.5, 7.0, float("inf")]),
    )
    state = KeyedState(detector.keys)
    run(detector, [frame.with_columns(pl.col("shop.metric.count").cast(pl.Float64)), odd], state)
    assert state.table("series", {})["_points"][0] == int((counts > 0).sum())
