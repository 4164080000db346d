"""Account profiles: what an account used before, read onto each event before detection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.config import RuntimeSettings
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.profiles import PROFILE_FIELDS, PROFILE_STATE, Profiler, ProfileSettings
from shopwatch.detect.registry import build
from shopwatch.pipeline.engine import Engine

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    return conform(pl.DataFrame(list(rows)))


def at(days: float, **fields: Any) -> dict[str, Any]:
    """A successful login of account ``a`` (fields override)."""
    return {
        "@timestamp": T0 + timedelta(days=days),
        "user.name": "a",
        "event.dataset": "shop.auth",
        "event.action": "login",
        "event.outcome": "success",
        **fields,
    }


def annotate(*batches: pl.DataFrame, settings: ProfileSettings | None = None) -> pl.DataFrame:
    profiler = Profiler(settings)
    state = profiler.new_state()
    return pl.concat([profiler.annotate(b, state) for b in batches])


HISTORY = frame(
    at(0, **{"shop.device.id": "d1", "source.as.number": 3320, "event.outcome": "success"}),
    at(
        5,
        **{
            "event.dataset": "shop.payment",
            "event.action": "authorize",
            "shop.device.id": "d1",
            "shop.payment.card.fingerprint": "c1",
        },
    ),
)


def test_known_values_are_known_and_new_ones_new() -> None:
    now = frame(
        at(10, **{"shop.device.id": "d1", "source.as.number": 3320}),
        at(10.01, **{"shop.device.id": "d2", "source.as.number": 14061}),
        at(10.02, **{"shop.payment.card.fingerprint": "c1"}),
        at(10.03, **{"shop.payment.card.fingerprint": "c9"}),
    )
    out = annotate(HISTORY, now).tail(4)
    assert out["shop.profile.new_device"].to_list() == [False, True, None, None]
    assert out["shop.profile.new_as"].to_list() == [False, True, None, None]
    assert out["shop.profile.new_card"].to_list() == [None, None, False, True]
    assert out["shop.profile.known_days"][0] == 10.0


def test_a_young_account_calls_nothing_new() -> None:
    out = annotate(frame(at(0, **{"shop.device.id": "d1"}), at(2, **{"shop.device.id": "d2"})))
    assert out["shop.profile.new_device"].to_list() == [None, None]
    assert out["shop.profile.known_days"].to_list() == [0.0, 2.0]


def test_a_failed_login_teaches_nothing() -> None:
    tried = frame(at(8, **{"shop.device.id": "bot", "event.outcome": "failure"}))
    later = frame(at(9.5, **{"shop.device.id": "bot", "event.outcome": "success"}))
    assert annotate(HISTORY, tried, later)["shop.profile.new_device"][-1] is True


def test_only_the_accounts_own_activity_teaches() -> None:
    """A reset request, an unknown outcome or a page view leaves the device unknown."""
    probes = frame(
        at(8, **{"shop.device.id": "bot", "event.action": "password_reset_request"}),
        at(8.1, **{"shop.device.id": "bot", "event.outcome": "unknown"}),
        at(8.2, **{"shop.device.id": "bot", "event.dataset": "http.access"}),
        at(8.3, **{"shop.device.id": "bot", "event.outcome": None}),
    )
    later = frame(at(9.5, **{"shop.device.id": "bot"}))
    assert annotate(HISTORY, probes, later)["shop.profile.new_device"][-1] is True


def test_a_value_stays_new_for_recent_then_is_known() -> None:
    first = frame(at(10, **{"shop.device.id": "d2"}))
    soon = frame(at(10.5, **{"shop.device.id": "d2"}))
    later = frame(at(11.5, **{"shop.device.id": "d2"}))
    out = annotate(HISTORY, first, soon, later)["shop.profile.new_device"].tail(3).to_list()
    assert out == [True, True, False]


def test_the_answers_do_not_depend_on_the_batches() -> None:
    rows = [*HISTORY.iter_rows(named=True)] + [
        at(10 + i / 100, **{"shop.device.id": f"d{i % 3}", "event.outcome": "success"})
        for i in range(12)
    ]
    whole = annotate(frame(*rows))
    single = annotate(*[frame(r) for r in rows])
    columns = ["shop.profile.new_device", "shop.profile.known_days"]
    assert whole.select(columns).equals(single.select(columns))


def test_what_the_input_says_of_profiles_is_not_believed() -> None:
    forged = frame(at(10, **{"shop.device.id": "bot", "shop.profile.new_device": False}))
    assert annotate(HISTORY, forged)["shop.profile.new_device"][-1] is True
    no_user = conform(pl.DataFrame({"@timestamp": [T0], "shop.profile.new_device": [False]}))
    assert annotate(no_user)["shop.profile.new_device"].to_list() == [None]


def test_each_attribute_keeps_at_most_max_values() -> None:
    settings = ProfileSettings(max_values=3)
    profiler = Profiler(settings)
    state = profiler.new_state()
    profiler.annotate(frame(*[at(i, **{"shop.device.id": f"d{i}"}) for i in range(6)]), state)
    kept = state.table("profile", {}).filter(pl.col("_attr") == "device")
    assert sorted(kept["_v"].to_list()) == ["d3", "d4", "d5"]  # the most recently used


def test_the_engine_keeps_profiles_only_for_rules_that_read_them_and_snapshots_them() -> None:
    new_device = {"event.action": "login", "shop.profile.new_device": True}
    reading = [
        build(
            {
                "id": "test.new_device_login",
                "kind": "threshold",
                "category": "account_takeover",
                "where": new_device,
                "group_by": ["user.name"],
                "count": {"at_least": 2, "within": "1h"},
            }
        )
    ]
    others = [d for d in load_detectors().detectors if not d.needs & set(PROFILE_FIELDS)]
    assert PROFILE_STATE not in Engine(others).states
    engine = Engine(reading, runtime=RuntimeSettings())
    engine.process(HISTORY)
    restored = Engine(reading, runtime=RuntimeSettings())
    restored.restore(engine.snapshot())
    assert (
        restored.states[PROFILE_STATE].table("profile", {}).height
        == (engine.states[PROFILE_STATE].table("profile", {}).height)
        > 0
    )
