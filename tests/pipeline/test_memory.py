"""Detector state has a ceiling that holds: a flood of distinct keys is shed, counted, and
the keys that stay active are detected exactly as without the flood."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
from prometheus_client import REGISTRY

from shopwatch.config import RuntimeSettings
from shopwatch.contract import conform
from shopwatch.detect import build
from shopwatch.pipeline import Engine

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
BY_IP = {
    "id": "test.failures_by_ip",
    "kind": "threshold",
    "category": "brute_force",
    "where": {"event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 3, "within": "5m"},
}
BY_USER = {
    "id": "test.stuffing_by_user",
    "kind": "threshold",
    "category": "credential_stuffing",
    "where": {"event.outcome": "failure"},
    "group_by": ["user.name"],
    "count": {"at_least": 3, "distinct": "source.ip", "within": "5m"},
}
ATTACKERS = ("198.51.100.7", "198.51.100.8", "198.51.100.9")
BUDGET = 300_000
BATCHES = 40
FLOOD_PER_BATCH = 1000


def batch(b: int, *, with_flood: bool) -> pl.DataFrame:
    """Batch ``b``: 10 s of event time; the attackers fail once each, the flood once per key."""
    start = T0 + timedelta(seconds=10 * b)
    ids: list[str] = []
    ips: list[str] = []
    users: list[str] = []
    times: list[datetime] = []
    if with_flood:
        for i in range(FLOOD_PER_BATCH):
            ids.append(f"flood-{b}-{i}")
            ips.append(f"10.{b}.{i // 256}.{i % 256}")
            users.append(f"user{b}-{i}@example.com")
            times.append(start + timedelta(milliseconds=2 * i))
    for n, ip in enumerate(ATTACKERS):
        ids.append(f"attack-{b}-{n}")
        ips.append(ip)
        users.append("victim@example.com")
        times.append(start + timedelta(seconds=9, milliseconds=n))
    order = sorted(range(len(times)), key=times.__getitem__)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [times[i] for i in order],
                "event.id": [ids[i] for i in order],
                "event.outcome": ["failure"] * len(order),
                "source.ip": [ips[i] for i in order],
                "user.name": [users[i] for i in order],
            }
        )
    )


def engine(budget: int) -> Engine:
    runtime = RuntimeSettings(state_max_bytes=budget, memory_max_bytes=None)
    return Engine([build(BY_IP), build(BY_USER)], runtime=runtime)


def shed_metric(detector: str) -> float:
    value = REGISTRY.get_sample_value(
        "shopwatch_detect_state_shed_rows_total", {"detector": detector}
    )
    return value or 0.0


def attacker_alerts(alerts: pl.DataFrame) -> pl.DataFrame:
    about = pl.col("entity").struct.field("source.ip").is_in(ATTACKERS) | (
        pl.col("entity").struct.field("user.name") == "victim@example.com"
    )
    return alerts.filter(about).select("alert.id", "@timestamp", "rule.id", "event.ids")


def test_a_flood_of_distinct_keys_stays_under_the_budget_and_is_counted() -> None:
    flooded = engine(BUDGET)
    before = shed_metric("test.failures_by_ip")
    peak = 0
    for b in range(BATCHES):
        flooded.process(batch(b, with_flood=True))
        peak = max(peak, flooded.state_bytes)
    assert peak <= BUDGET
    stats = flooded.stats.as_dict()
    assert stats["state_bytes"] == flooded.state_bytes <= BUDGET
    assert stats["shed_keys"]["test.failures_by_ip"] > FLOOD_PER_BATCH
    assert stats["shed_rows"]["test.stuffing_by_user"] > FLOOD_PER_BATCH
    assert shed_metric("test.failures_by_ip") - before == stats["shed_rows"]["test.failures_by_ip"]


def test_without_the_ceiling_the_same_flood_passes_it() -> None:
    unbounded = engine(1 << 40)
    for b in range(15):
        unbounded.process(batch(b, with_flood=True))
    assert unbounded.state_bytes > 3 * BUDGET
    assert not unbounded.stats.shed_rows


def test_keys_that_stay_active_are_detected_as_without_the_flood() -> None:
    flooded, quiet = engine(BUDGET), engine(BUDGET)
    got = [flooded.process(batch(b, with_flood=True)) for b in range(BATCHES)]
    want = [quiet.process(batch(b, with_flood=False)) for b in range(BATCHES)]
    flooded_alerts = attacker_alerts(pl.concat(got))
    quiet_alerts = attacker_alerts(pl.concat(want))
    assert set(quiet_alerts["rule.id"]) == {"test.failures_by_ip", "test.stuffing_by_user"}
    assert quiet_alerts.height >= 6  # each address twice (the suppression is 5 min), the account
    assert flooded_alerts.equals(quiet_alerts)
    assert sum(flooded.stats.shed_rows.values()) > 0 and not quiet.stats.shed_rows


def test_shed_counts_survive_a_restart() -> None:
    flooded = engine(BUDGET)
    for b in range(10):
        flooded.process(batch(b, with_flood=True))
    restored = engine(BUDGET)
    restored.restore(flooded.snapshot())
    assert restored.stats.shed_rows == flooded.stats.shed_rows
    assert restored.stats.state_rows == flooded.stats.state_rows
