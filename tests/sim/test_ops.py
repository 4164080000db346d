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
from shopwatch.sim.gen_ops import METRICS, TARGETS
from shopwatch.sim.traffic import Traffic
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
    assert r["truth"]["entities"] == {"shop.metric.name": sorted(METRICS["gateway"])}


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
