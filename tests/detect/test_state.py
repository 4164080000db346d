"""KeyedState bounds (age, key count) and snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from shopwatch.detect import KeyedState
from shopwatch.detect.state import EARLIEST, LATEST, shed_to_budget, shift_time

T0 = datetime(2026, 5, 4, tzinfo=UTC)


def table(n_keys: int, minutes_apart: int = 1) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "source.ip": [f"10.0.{i // 256}.{i % 256}" for i in range(n_keys)],
            "_ts": [T0 + timedelta(minutes=i * minutes_apart) for i in range(n_keys)],
            "n": list(range(n_keys)),
        }
    )


def test_eviction_by_age_follows_the_watermark() -> None:
    state = KeyedState(("source.ip",), max_age=timedelta(minutes=30))
    state.put("t", table(100))
    dropped = state.evict(T0 + timedelta(minutes=99))
    kept = state.table("t", {})
    assert dropped == 69 and kept.height == 31
    assert kept["_ts"].min() == T0 + timedelta(minutes=69)


def test_eviction_by_key_count_keeps_the_most_recent() -> None:
    state = KeyedState(("source.ip",), max_keys=10, max_age=timedelta(days=30))
    state.put("t", table(1000))
    state.evict(T0)
    kept = state.table("t", {})
    assert kept.height == 10 and kept["n"].min() == 990
    assert state.evicted_rows == 990


def test_snapshot_round_trip_keeps_tables_and_watermark() -> None:
    state = KeyedState(("source.ip",))
    state.put("t", table(50))
    state.evict(T0 + timedelta(minutes=10))
    copy = KeyedState(("source.ip",))
    copy.restore(state.snapshot())
    assert copy.table("t", {}).equals(state.table("t", {}))
    assert copy.watermark == state.watermark
    assert copy.nbytes == state.nbytes > 0


def test_time_arithmetic_at_the_ends_of_the_calendar_does_not_raise() -> None:
    state = KeyedState(("source.ip",), max_age=timedelta(hours=1))
    state.put("t", table(3))
    assert state.evict(datetime(1, 1, 1, tzinfo=UTC)) == 0  # 0001-01-01 minus an hour
    assert state.evict(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)) == 3
    assert shift_time(LATEST, timedelta(days=1)) == LATEST
    assert shift_time(EARLIEST, -timedelta(days=1)) == EARLIEST


def test_the_clock_bounds_what_a_detector_trims_against() -> None:
    state = KeyedState(("source.ip",))
    future = datetime(9999, 12, 31, tzinfo=UTC)
    assert state.now(future) == future  # alone, a detector has only its newest event
    state.clock = T0
    assert state.now(future) == T0 and state.now(T0 - timedelta(hours=1)) < T0


def flood(state: KeyedState, prefix: str, start: datetime, n: int) -> None:
    state.put(
        "t",
        pl.DataFrame(
            {
                "source.ip": [f"{prefix}.{i}" for i in range(n)],
                "_ts": [start + timedelta(seconds=i) for i in range(n)],
                "payload": ["x" * 40] * n,
            }
        ),
    )


def test_budget_sheds_the_least_recently_seen_keys_across_detectors() -> None:
    old, new = KeyedState(("source.ip",)), KeyedState(("source.ip",))
    flood(old, "10.0.0", T0, 200)
    flood(new, "10.0.1", T0 + timedelta(hours=1), 200)
    total = old.nbytes + new.nbytes
    shed = shed_to_budget({"a.old": old, "b.new": new}, max_bytes=total // 2)
    assert old.nbytes + new.nbytes <= 0.9 * (total // 2)
    assert shed["a.old"] == (200, 200) and "b.new" in shed
    kept = new.table("t", {})
    assert kept["_ts"].min() > T0 + timedelta(hours=1)  # newest kept, oldest shed
    assert (old.shed_keys, old.shed_rows) == (200, 200)
    assert new.shed_keys == 200 - kept.height


def test_budget_within_its_limit_sheds_nothing() -> None:
    state = KeyedState(("source.ip",))
    flood(state, "10.0.0", T0, 50)
    assert shed_to_budget({"a": state}, max_bytes=state.nbytes) == {}
    assert state.rows == 50 and state.shed_rows == 0


def test_budget_sheds_deterministically_on_ties() -> None:
    def run() -> list[str]:
        state = KeyedState(("source.ip",))
        state.put(
            "t",
            pl.DataFrame({"source.ip": [f"k{i:03d}" for i in range(100)], "_ts": [T0] * 100}),
        )
        shed_to_budget({"a": state}, max_bytes=state.nbytes // 2)
        return sorted(state.table("t", {})["source.ip"].to_list())

    first = run()
    assert first == run() and first[0] == "k000" and len(first) < 50


def test_split_by_keys_matches_a_semi_and_an_anti_join() -> None:
    from shopwatch.detect.state import split_by_keys

    held = pl.DataFrame(
        {"k": ["a", "b", None, "c", "a"], "j": ["x", "y", "z", "x", "y"], "v": range(5)}
    )
    for keys, touched in (
        (["k"], pl.DataFrame({"k": ["a", "d"]})),
        (["k"], pl.DataFrame({"k": [None, "c"]}, schema={"k": pl.String})),
        (["k", "j"], pl.DataFrame({"k": ["a", None], "j": ["y", "z"]})),
    ):
        mine, rest = split_by_keys(held, touched, keys)
        semi = held.join(touched, on=keys, how="semi", nulls_equal=True)
        anti = held.join(touched, on=keys, how="anti", nulls_equal=True)
        assert sorted(mine["v"]) == sorted(semi["v"]) and sorted(rest["v"]) == sorted(anti["v"])
        assert mine.height + rest.height == held.height
