"""The threshold kind: windows, distinct counts, suppression, evidence and bounds."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import KeyedState, build
from shopwatch.errors import ContentError

T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)

RULE = {
    "id": "test.failures",
    "kind": "threshold",
    "category": "brute_force",
    "severity": "high",
    "where": {"event.dataset": "shop.auth", "event.outcome": "failure"},
    "group_by": ["source.ip"],
    "count": {"at_least": 5, "within": "10m"},
}


def events(spec: list[tuple[int, str, str]], outcome: str = "failure") -> pl.DataFrame:
    """(seconds after T0, ip, user) → login events."""
    return conform(
        pl.DataFrame(
            [
                {
                    "@timestamp": T0 + timedelta(seconds=s),
                    "event.id": f"e{i}",
                    "event.dataset": "shop.auth",
                    "event.action": "login",
                    "event.outcome": outcome,
                    "source.ip": ip,
                    "user.name": user,
                }
                for i, (s, ip, user) in enumerate(spec)
            ]
        )
    )


def test_fires_at_the_event_that_reaches_the_threshold() -> None:
    det = build(RULE)
    alerts = det.detect(
        events([(i * 30, "198.51.100.9", "a") for i in range(8)]), KeyedState(det.keys)
    )
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["@timestamp"] == T0 + timedelta(seconds=4 * 30)
    assert row["event.ids"] == ["e0", "e1", "e2", "e3", "e4"]
    assert row["entity"]["source.ip"] == "198.51.100.9"
    assert json.loads(row["details"])["count"] == 5


def test_spread_out_failures_never_fill_a_window() -> None:
    det = build(RULE)
    slow = events([(i * 200, "198.51.100.9", "a") for i in range(30)])  # one every 3m20s
    assert det.detect(slow, KeyedState(det.keys)).height == 0


def test_keys_are_counted_apart() -> None:
    det = build(RULE)
    mixed = events([(i * 10, f"203.0.113.{i % 4}", "a") for i in range(16)])  # 4 per address
    assert det.detect(mixed, KeyedState(det.keys)).height == 0


def test_suppression_then_a_new_alert_for_an_ongoing_attack() -> None:
    det = build(RULE)
    ongoing = events([(i * 20, "198.51.100.9", "a") for i in range(120)])  # 40 minutes
    alerts = det.detect(ongoing, KeyedState(det.keys))
    times = alerts["@timestamp"].to_list()
    assert len(times) == 4
    assert all(b - a >= timedelta(minutes=10) for a, b in itertools.pairwise(times))
    assert alerts["alert.id"].n_unique() == 4


def test_distinct_values_count_not_repeats() -> None:
    rule = {
        **RULE,
        "id": "test.stuffing",
        "count": {"distinct": "user.name", "at_least": 4, "within": "10m"},
    }
    det = build(rule)
    repeats = events([(i, "198.51.100.9", "same") for i in range(50)])
    assert det.detect(repeats, KeyedState(det.keys)).height == 0
    many = events([(i, "198.51.100.9", f"u{i % 6}") for i in range(12)])
    alerts = det.detect(many, KeyedState(det.keys))
    details = json.loads(alerts["details"][0])
    assert details["distinct"] == 4 and details["examples"] == ["u0", "u1", "u2", "u3"]
    assert alerts["@timestamp"][0] == T0 + timedelta(seconds=3)


def test_other_events_do_not_count() -> None:
    det = build(RULE)
    ok = events([(i, "198.51.100.9", "a") for i in range(40)], outcome="success")
    assert det.detect(ok, KeyedState(det.keys)).height == 0


def test_state_carries_a_window_across_batches() -> None:
    det = build(RULE)
    state = KeyedState(det.keys)
    stream = events([(i * 30, "198.51.100.9", "a") for i in range(5)])
    assert det.detect(stream.head(3), state).height == 0
    assert det.detect(stream.slice(3), state).height == 1
    assert state.table("tail", {}).height <= 5


def test_tail_keeps_only_the_last_window() -> None:
    det = build(RULE)
    state = KeyedState(det.keys)
    det.detect(events([(i * 60, "198.51.100.9", "a") for i in range(120)]), state)
    tail = state.table("tail", {})
    assert tail.height <= 12
    assert tail["@timestamp"].min() > T0 + timedelta(minutes=100)


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"count": {"at_least": 5, "within": "10"}}, "no unit"),
        ({"count": {"at_least": 5, "within": "10m", "typo": 1}}, "typo"),
        ({"category": "nonsense"}, "category"),
        ({"where": {"url.path": {"regex": "("}}}, "regex"),
        ({"where": {"url.path": {"matches": "x"}}}, "unknown operator"),
        ({"group_by": []}, "group_by"),
    ],
)
def test_bad_rules_are_content_errors_naming_the_problem(patch: dict, needle: str) -> None:
    with pytest.raises(ContentError) as err:
        build({**RULE, **patch}, "rules/test/x.yaml")
    assert needle in str(err.value) and "rules/test/x.yaml" in str(err.value)


def test_unknown_kind_lists_the_known_ones() -> None:
    with pytest.raises(ContentError, match="threshold"):
        build({**RULE, "kind": "nope"}, "x.yaml")
