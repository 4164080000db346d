"""The shop's operations going wrong: checkout slowdowns and a provider's brief blip."""

from __future__ import annotations

import json
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shopwatch.sim.campaigns import Campaign, generate
from shopwatch.sim.emit import Out, Sink
from shopwatch.sim.engine import PlannedCampaign, Simulator
from shopwatch.sim.gen_ops import METRICS, TARGETS, VENDORS
from shopwatch.sim.traffic import VENDOR_ERRORS, Traffic
from shopwatch.sim.world import build_shop

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
T0 = START.timestamp()


def _run(kind: str, variant: str, at_min: float, minutes: float) -> dict[str, Any]:
    plans = [PlannedCampaign(kind, T0 + at_min * 60, minutes - at_min, variant)]
    sim = Simulator(START, seed=3, customers=4000, campaigns=plans, end=T0 + minutes * 60)
    lines = sim.tick(T0 + minutes * 60)["ecs"]
    events = [json.loads(line) for line in lines]
    return {"events": events, "truth": sim.ground_truth[0], "sink": sim.sink}


def _stripe(events: list[dict[str, Any]]) -> list[tuple[float, float]]:
    out = []
    for e in events:
        if e["event"]["dataset"] == "vendor.api" and e["shop"]["vendor"]["name"] == "stripe":
            t = datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")).timestamp()
            out.append((t, e["event"]["duration"] / 1e6))
    return out


def test_a_gateway_incident_slows_every_authorization_at_once() -> None:
    r = _run("checkout_latency_shift", "loud", 60, 120)
    factor, start = r["truth"]["params"]["factor"], T0 + 60 * 60
    calls = _stripe(r["events"])
    before = [ms for t, ms in calls if t < start]
    during = [ms for t, ms in calls if t >= start]
    assert len(before) > 20 and len(during) > 20
    ratio = statistics.median(during) / statistics.median(before)
    assert ratio == pytest.approx(factor, rel=0.3)
    # the minute's samples show it: its p95 and its share of authorizations over a second
    samples = {
        (e["shop"]["metric"]["name"], e["@timestamp"]): e["shop"]["metric"]
        for e in r["events"]
        if e["event"]["dataset"] == "apm.metric"
    }
    for name in METRICS["gateway"]:
        assert any(k[0] == name for k in samples)
    share = [m for (n, _), m in samples.items() if n == "gateway.slow_share"]
    assert all(m["count"] >= 1 for m in share)
    assert r["truth"]["entities"] == {
        "shop.metric.name": sorted(METRICS["gateway"]),
        "shop.vendor.name": ["stripe"],
    }


def test_sessions_under_way_are_slowed_from_the_moment_of_the_shift() -> None:
    """Sessions are planned whole when they begin, so a slowdown starts hours ahead of
    its time: a session begun before it that checks out after it is slowed."""
    plans = [PlannedCampaign("checkout_latency_shift", T0 + 90 * 60, 60, "loud")]
    sim = Simulator(START, seed=3, customers=500, campaigns=plans, end=T0 + 150 * 60)
    sim.tick(T0 + 60)
    assert [c["kind"] for c in sim.ground_truth] == ["checkout_latency_shift"]
    assert sim.sink.slowness("gateway", T0 + 90 * 60 - 1) == 1.0
    assert sim.sink.slowness("gateway", T0 + 90 * 60 + 1) > 1.5


def test_a_regression_creeps_up_to_its_factor() -> None:
    shop = build_shop(3, 500)
    sink = Sink(3, T0)
    c = Campaign("t", "checkout_latency_shift", T0, T0 + 10 * 3600, variant="low_slow")
    generate(Out(sink, "t"), np.random.default_rng([3, 2, 0]), c, shop, Traffic(shop))
    target = TARGETS[("checkout_latency_shift", "low_slow")]
    ramp = c.params["ramp_min"] * 60
    assert sink.slowness(target, T0) == pytest.approx(1.0)
    assert 1.0 < sink.slowness(target, T0 + ramp / 2) < c.params["factor"]
    assert sink.slowness(target, T0 + ramp + 1) == pytest.approx(c.params["factor"], rel=1e-3)
    assert sink.slowness(target, c.end + 1) == 1.0
    assert sink.slowness("gateway", T0 + ramp) == 1.0  # only its own target


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_a_blip_is_minutes_long_and_then_gone(seed: int) -> None:
    shop = build_shop(seed, 500)
    sink = Sink(seed, T0)
    c = Campaign("t", "latency_blip", T0, T0 + 3600)
    generate(Out(sink, "t"), np.random.default_rng([seed, 2, 0]), c, shop, Traffic(shop))
    assert 60 <= c.end - c.start <= 180
    assert sink.slowness("gateway", T0 + 30) == pytest.approx(c.params["factor"], rel=1e-3)
    assert 1.5 <= c.params["factor"] <= 3.0
    assert sink.slowness("gateway", c.end + 1) == 1.0
    assert (datetime.fromtimestamp(c.end, UTC) - START) < timedelta(minutes=3, seconds=1)


# ------------------------------------------------------------------ vendors


def _vendor_calls(events: list[dict[str, Any]], vendor: str) -> list[tuple[float, int, str]]:
    out = []
    for e in events:
        if e["event"]["dataset"] == "vendor.api" and e["shop"]["vendor"]["name"] == vendor:
            t = datetime.fromisoformat(e["@timestamp"].replace("Z", "+00:00")).timestamp()
            out.append((t, e["http"]["response"]["status_code"], e["url"]["path"]))
    return out


def _failing(calls: list[tuple[float, int, str]]) -> float:
    bad = [s for _, s, _ in calls if s >= 500 or s in (401, 403, 429)]
    return len(bad) / max(len(calls), 1)


def _outage(seed: int, variant: str, minutes: float) -> dict[str, Any]:
    """A vendor outage on a vendor called often enough to measure (drawn per seed)."""
    plans = [PlannedCampaign("vendor_anomaly", T0 + 30 * 60, minutes - 30, variant)]
    sim = Simulator(START, seed=seed, customers=2000, campaigns=plans, end=T0 + minutes * 60)
    events = [json.loads(line) for line in sim.tick(T0 + minutes * 60)["ecs"]]
    return {"events": events, "truth": sim.ground_truth[0]}


def test_a_vendors_calls_fail_now_and_then() -> None:
    """Every vendor has its usual failures, within the range the simulator documents."""
    shop = build_shop(3, 500)
    tr = Traffic(shop)
    lo, hi = VENDOR_ERRORS
    assert set(tr.vendor_errors) == set(VENDORS)
    assert all(lo <= share <= hi for share in tr.vendor_errors.values())
    r = _run("latency_blip", "loud", 100, 240)  # a few hours of ordinary calls
    calls = _vendor_calls(r["events"], "algolia")
    assert len(calls) > 1000
    assert 0 < _failing(calls) < 0.02


@pytest.mark.parametrize("seed", [1, 4])
def test_a_refused_key_fails_most_calls_at_once(seed: int) -> None:
    r = _outage(seed, "loud", 120)
    p, truth = r["truth"]["params"], r["truth"]
    vendor, start = p["vendor"], T0 + 30 * 60
    assert truth["entities"] == {"shop.vendor.name": [vendor]}
    codes = {int(c) for c in p["statuses"].split(",")}
    assert codes in ({401, 403}, {429})
    calls = _vendor_calls(r["events"], vendor)
    end = start + p["duration_min"] * 60
    before = [c for c in calls if c[0] < start]
    during = [c for c in calls if start <= c[0] < end]
    assert len(before) >= 5 and len(during) >= 5
    assert _failing(before) < 0.05
    failed = [s for _, s, _ in during if s in codes]
    # the share drawn, counted over calls that include the retries of the retryable ones
    assert len(failed) / len(during) >= 0.5 * p["share"]
    if codes == {429}:  # a rate limit is retried: more calls than orders asked for
        assert len(during) / max(len(during) - len(failed), 1) > 1.2


def test_a_degrading_vendor_fails_more_and_more_calls() -> None:
    r = _outage(1, "low_slow", 30 + 300)
    p = r["truth"]["params"]
    calls = _vendor_calls(r["events"], p["vendor"])
    start, ramp = T0 + 30 * 60, p["ramp_min"] * 60
    first = [c for c in calls if start <= c[0] < start + ramp / 2]
    held = [c for c in calls if start + ramp <= c[0] < start + p["duration_min"] * 60]
    assert p["statuses"] == "500,502,503,504"
    assert len(held) > 100 and _failing(held) > max(2 * _failing(first), 0.05)
    assert all(s < 400 or s >= 500 for _, s, _ in held)  # server errors only


def test_a_month_end_run_is_many_more_of_the_usual_calls() -> None:
    shop = build_shop(3, 500)
    sink = Sink(3, T0)
    c = Campaign("t", "vendor_month_end", T0, T0 + 6 * 3600)
    generate(Out(sink, "t"), np.random.default_rng([3, 12, 4, 0]), c, shop, Traffic(shop))
    lines = sink.release(T0 + 6 * 3600)["ecs"]
    events = [json.loads(line) for line in lines]
    vendor = c.params["vendor"]
    calls = _vendor_calls(events, vendor)
    assert vendor in ("sendgrid", "dhl")
    hours = (c.end - c.start) / 3600
    assert len(calls) >= c.params["calls"]  # with the retries of its usual failures
    assert len(calls) / (hours * 60) == pytest.approx(c.params["calls_per_min"], rel=0.3)
    assert len({path for _, _, path in calls}) == 1  # the usual endpoint only
    assert _failing(calls) < 0.02


def test_an_outage_changes_only_the_vendors_calls() -> None:
    """Failures are drawn from a stream of their own: the shop's requests are the same
    line for line with or without an outage."""
    end = T0 + 60 * 60
    plain = Simulator(START, seed=5, customers=500, campaigns=[], end=end).tick(end)
    plans = [PlannedCampaign("vendor_anomaly", T0 + 10 * 60, 50, "loud")]
    failing = Simulator(START, seed=5, customers=500, campaigns=plans, end=end).tick(end)
    assert failing["nginx"] == plain["nginx"]
    assert failing["syslog"] == plain["syslog"]
    assert failing["vpcflow"] != plain["vpcflow"]  # the retries' flows

    def business(lines: list[str]) -> list[dict[str, Any]]:
        # the shop's own events; their ids are numbered per session, so a retry moves them
        events = [json.loads(line) for line in lines]
        kept = [e for e in events if e["event"]["dataset"] not in ("vendor.api", "apm.metric")]
        for e in kept:
            e["event"].pop("id", None)
        return kept

    assert business(failing["ecs"]) == business(plain["ecs"])
    assert failing["ecs"] != plain["ecs"]
