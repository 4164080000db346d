"""KeyedState bounds (age, key count) and snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from shopwatch.detect import KeyedState
from shopwatch.detect.state import EARLIEST, LATEST, shift_time

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
