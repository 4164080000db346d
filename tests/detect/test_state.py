"""KeyedState bounds (age, key count) and snapshots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl

from shopwatch.detect import KeyedState

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
