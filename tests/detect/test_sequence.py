"""The ``sequence`` kind: steps on one key in order (or all of them) within a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState
from shopwatch.errors import ContentError

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
STEPS = [
    {"name": "login", "where": {"event.action": "login", "event.outcome": "success"}},
    {"name": "change", "where": {"event.action": ["email_change", "password_change"]}},
    {"name": "card", "where": {"event.action": "payment_method_add"}},
]


def rule(**over: Any) -> Any:
    raw = {
        "id": "test.sequence",
        "kind": "sequence",
        "category": "account_takeover",
        "group_by": ["user.name"],
        "within": "1h",
        "entity_from": ["source.ip"],
        "steps": STEPS,
        **over,
    }
    return build(raw)


def events(*rows: tuple[str, str, float]) -> pl.DataFrame:
    """(user, action, seconds after T0) rows; every login succeeds."""
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=s) for _, _, s in rows],
                "event.id": [f"e{i}" for i in range(len(rows))],
                "user.name": [u for u, _, _ in rows],
                "event.action": [a for _, a, _ in rows],
                "event.outcome": ["success"] * len(rows),
                "source.ip": ["203.0.113.7"] * len(rows),
            }
        )
    )


def run(detector: Any, frame: pl.DataFrame, *, one_by_one: bool = False) -> pl.DataFrame:
    state = KeyedState(detector.keys)
    parts = [frame.slice(i, 1) for i in range(frame.height)] if one_by_one else [frame]
    found = [detector.detect(p, state) for p in parts]
    found = [f for f in found if f.height]
    return pl.concat(found) if found else pl.DataFrame()


CHAIN = events(("a", "login", 0), ("a", "email_change", 60), ("a", "payment_method_add", 120))


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one-batch", "event-per-batch"])
def test_a_chain_in_order_fires_once_whatever_the_batches(one_by_one: bool) -> None:
    alerts = run(rule(), CHAIN, one_by_one=one_by_one)
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["event.ids"] == ["e0", "e1", "e2"]
    assert row["entity"]["user.name"] == "a" and row["entity"]["source.ip"] == "203.0.113.7"
    assert row["@timestamp"] == T0 + timedelta(seconds=120)


def test_out_of_order_steps_do_not_fire_an_ordered_rule() -> None:
    frame = events(("a", "email_change", 0), ("a", "login", 60), ("a", "payment_method_add", 120))
    assert run(rule(), frame).height == 0


def test_out_of_order_steps_fire_an_unordered_rule() -> None:
    frame = events(("a", "email_change", 0), ("a", "payment_method_add", 60), ("a", "login", 120))
    alerts = run(rule(ordered=False), frame, one_by_one=True)
    assert alerts.height == 1
    assert sorted(alerts.row(0, named=True)["event.ids"]) == ["e0", "e1", "e2"]


@pytest.mark.parametrize("ordered", [True, False])
def test_a_chain_longer_than_the_window_does_not_fire(ordered: bool) -> None:
    frame = events(
        ("a", "login", 0), ("a", "email_change", 1800), ("a", "payment_method_add", 3700)
    )
    assert run(rule(ordered=ordered), frame, one_by_one=True).height == 0


def test_a_later_start_rescues_a_chain() -> None:
    """A second login inside the window is the chain's start, not the stale first one."""
    frame = events(
        ("a", "login", 0),
        ("a", "login", 3000),
        ("a", "email_change", 3100),
        ("a", "payment_method_add", 3700),
    )
    alerts = run(rule(), frame, one_by_one=True)
    assert alerts.height == 1 and alerts.row(0, named=True)["event.ids"] == ["e1", "e2", "e3"]


def test_keys_do_not_mix() -> None:
    frame = events(("a", "login", 0), ("b", "email_change", 60), ("a", "payment_method_add", 120))
    assert run(rule(), frame).height == 0


def test_a_key_stays_quiet_for_suppress_then_fires_again() -> None:
    again = events(
        ("a", "login", 0),
        ("a", "email_change", 60),
        ("a", "payment_method_add", 120),
        ("a", "payment_method_add", 600),
        ("a", "login", 4000),
        ("a", "email_change", 4100),
        ("a", "payment_method_add", 4200),
    )
    alerts = run(rule(), again, one_by_one=True)
    assert alerts["@timestamp"].to_list() == [
        T0 + timedelta(seconds=120),
        T0 + timedelta(seconds=4200),
    ]


def test_state_holds_only_live_chains() -> None:
    detector = rule()
    state = KeyedState(detector.keys)
    detector.detect(events(("a", "login", 0), ("b", "email_change", 0)), state)
    chains = state.table("chains", {})
    assert chains.height == 1 and chains["user.name"].to_list() == ["a"]  # b started nothing
    detector.detect(events(("c", "login", 4000)), state)
    detector.detect(events(("a", "email_change", 3700)), state)  # a's start is stale now
    assert "a" not in state.table("chains", {})["user.name"].to_list()


def test_rule_errors_are_named() -> None:
    with pytest.raises(ContentError, match="entity_from"):
        rule(entity_from=["url.path"])
    with pytest.raises(ContentError, match="steps"):
        rule(steps=STEPS[:1])
    with pytest.raises(ContentError, match="modifiers"):
        rule(group_by=["source.ip|net"])


def test_a_late_early_start_does_not_replace_a_later_one() -> None:
    """A login at 0h, a late one from -20h, the change at +10h: the 0h chain still fires."""
    detector = rule(within="24h", steps=STEPS[:2])
    frame = events(("a", "login", 0), ("a", "login", -20 * 3600), ("a", "email_change", 10 * 3600))
    alerts = run(detector, frame, one_by_one=True)
    assert alerts.height == 1 and alerts.row(0, named=True)["event.ids"] == ["e0", "e2"]
