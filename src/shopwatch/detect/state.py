"""Keyed state: compact per-entity tables, bounded by age, key count and bytes, snapshotted.

A detector keeps its memory here and nowhere else. Each named table is a Polars frame
that must carry the detector's key columns and a ``_ts`` column (event time of the row's
last activity). :meth:`KeyedState.evict` drops rows older than ``max_age`` behind the
watermark and, past ``max_keys`` distinct keys, the keys seen least recently.
:func:`shed_to_budget` holds the state of all detectors together under one byte budget.

The engine sets :attr:`KeyedState.clock`, its event-time "now" that no single event can
move (see :mod:`shopwatch.pipeline.engine`); detectors trim what they keep against it
rather than against the newest event they were given, so one event dated 9999 cannot
make a detector drop the windows of every other key.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import polars as pl

__all__ = [
    "EARLIEST",
    "LATEST",
    "KeyedState",
    "shed_to_budget",
    "shift_time",
    "split_by_keys",
]

#: The event-time range a datetime can hold; arithmetic on event times stays inside it.
EARLIEST = datetime.min.replace(tzinfo=UTC)
LATEST = datetime.max.replace(tzinfo=UTC)


def shift_time(at: datetime, delta: timedelta) -> datetime:
    """``at + delta``, held within years 1-9999 instead of raising ``OverflowError``.

    Event times come from the input, so ``at`` may be the first or last representable
    instant; a window or a lateness subtracted from it must not fail the batch.

    >>> shift_time(datetime(1, 1, 1, tzinfo=UTC), -timedelta(hours=1)) == EARLIEST
    True
    >>> shift_time(datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=1)).day
    2
    """
    try:
        return at + delta
    except OverflowError:
        return EARLIEST if delta < timedelta(0) else LATEST


class KeyedState:
    """Named, bounded, snapshot-able tables for one detector."""

    def __init__(
        self,
        keys: tuple[str, ...],
        *,
        max_keys: int = 200_000,
        max_age: timedelta = timedelta(hours=1),
    ) -> None:
        self.keys = keys
        self.max_keys = max_keys
        self.max_age = max_age
        self.watermark: datetime | None = None
        #: The engine's robust event-time now (None when the detector runs on its own).
        self.clock: datetime | None = None
        self.evicted_rows = 0
        self.shed_rows = 0
        self.shed_keys = 0
        self._tables: dict[str, pl.DataFrame] = {}

    def table(self, name: str, schema: dict[str, pl.DataType]) -> pl.DataFrame:
        """The table ``name``; an empty frame of ``schema`` when there is none yet."""
        found = self._tables.get(name)
        if found is None:
            return pl.DataFrame(schema=schema)
        return found

    def put(self, name: str, frame: pl.DataFrame) -> None:
        """Replace table ``name`` (it must have the key columns and ``_ts``)."""
        self._tables[name] = frame

    def now(self, newest: datetime) -> datetime:
        """The time a detector trims against: the engine's clock, never past ``newest``.

        ``newest`` is the latest event the detector holds; alone it is what one forged
        event can push to the year 9999, so the engine's clock bounds it.
        """
        if self.clock is None:
            return newest
        return min(newest, self.clock)

    def evict(self, watermark: datetime | None) -> int:
        """Apply the age and key-count bounds; returns how many rows were dropped."""
        if watermark is not None:
            self.watermark = watermark
        dropped = 0
        for name, frame in list(self._tables.items()):
            before = frame.height
            if before == 0:
                continue
            if self.watermark is not None and "_ts" in frame.columns:
                frame = frame.filter(pl.col("_ts") >= shift_time(self.watermark, -self.max_age))
            keys = [k for k in self.keys if k in frame.columns]
            if keys and frame.height:
                last = frame.group_by(keys).agg(pl.col("_ts").max().alias("_last"))
                if last.height > self.max_keys:
                    keep = last.sort("_last", *keys, descending=True).head(self.max_keys)
                    frame = frame.join(keep.select(keys), on=keys, how="semi", nulls_equal=True)
            dropped += before - frame.height
            self._tables[name] = frame
        self.evicted_rows += dropped
        return dropped

    def key_summary(self) -> pl.DataFrame:
        """One row per key: when it was last seen (``_last``) and its bytes (``_bytes``).

        Keys are sorted (``_order`` is their position) so that ties shed deterministically.
        Tables without the key columns or ``_ts`` are left out (they cannot be shed by key).
        """
        keys = list(self.keys)
        parts = []
        for frame in self._tables.values():
            if not keys or frame.height == 0 or not {*keys, "_ts"} <= set(frame.columns):
                continue
            per_row = frame.estimated_size() / frame.height
            parts.append(
                frame.group_by(keys).agg(
                    pl.col("_ts").max().alias("_last"),
                    (pl.len() * per_row).alias("_bytes"),
                )
            )
        if not parts:
            return pl.DataFrame(
                schema={
                    "_last": pl.Datetime("us", "UTC"),
                    "_bytes": pl.Float64,
                    "_order": pl.UInt32,
                }
            )
        summary = (
            pl.concat(parts, how="vertical_relaxed")
            .group_by(keys)
            .agg(pl.col("_last").max(), pl.col("_bytes").sum())
            .sort(keys, nulls_last=True)
            .with_row_index("_order")
        )
        return summary

    def drop_keys(self, keep: pl.DataFrame) -> int:
        """Keep only the keys in ``keep`` (key columns) in every keyed table; rows dropped."""
        keys = list(self.keys)
        dropped = 0
        for name, frame in list(self._tables.items()):
            if frame.height == 0 or not {*keys, "_ts"} <= set(frame.columns):
                continue
            kept = frame.join(keep.select(keys), on=keys, how="semi", nulls_equal=True)
            dropped += frame.height - kept.height
            self._tables[name] = kept
        return dropped

    @property
    def nbytes(self) -> int:
        """Estimated memory held by all tables, in bytes."""
        return sum(int(f.estimated_size()) for f in self._tables.values())

    @property
    def rows(self) -> int:
        """Rows held by all tables."""
        return sum(f.height for f in self._tables.values())

    def snapshot(self) -> dict[str, bytes]:
        """Each table as Arrow IPC bytes (plus the watermark), for :meth:`restore`."""
        out: dict[str, bytes] = {}
        for name, frame in self._tables.items():
            buf = io.BytesIO()
            frame.write_ipc(buf)
            out[name] = buf.getvalue()
        if self.watermark is not None:
            out["__watermark__"] = self.watermark.isoformat().encode()
        return out

    def restore(self, blobs: dict[str, bytes]) -> None:
        """Load what :meth:`snapshot` returned (replaces every table)."""
        self._tables = {}
        for name, blob in blobs.items():
            if name == "__watermark__":
                self.watermark = datetime.fromisoformat(blob.decode())
            else:
                self._tables[name] = pl.read_ipc(io.BytesIO(blob))


def split_by_keys(
    frame: pl.DataFrame, touched: pl.DataFrame, keys: list[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``frame``'s rows whose keys are in ``touched``, and the others (nulls equal nulls).

    A batch's keys against everything a detector holds: with one key column this is one
    membership test and two filters, about four times cheaper than a semi and an anti
    join over a large state, which is the cost a batch pays for every key held.
    """
    if len(keys) == 1:
        (key,) = keys
        wanted = touched.get_column(key)
        column = frame.get_column(key)
        mask = column.is_in(wanted.drop_nulls().implode()).fill_null(False)
        if wanted.null_count():
            mask = mask | column.is_null()
        return frame.filter(mask), frame.filter(~mask)
    mine = frame.join(touched, on=keys, how="semi", nulls_equal=True)
    rest = frame.join(touched, on=keys, how="anti", nulls_equal=True)
    return mine, rest


def shed_to_budget(
    states: Mapping[str, KeyedState], max_bytes: int, *, target: float = 0.9
) -> dict[str, tuple[int, int]]:
    """Hold all ``states`` under ``max_bytes``: shed the least recently seen keys.

    Nothing happens while the total is within ``max_bytes``. Past it, keys of every
    detector are ranked together by when they were last seen (event time, newest first;
    ties by detector id, then key) and kept while they fit in ``target * max_bytes``, so
    one shed makes room for a while instead of running on every batch. A key is shed
    from all tables of its detector at once. Returns ``{detector: (keys, rows)}`` shed,
    and adds them to each state's ``shed_keys`` / ``shed_rows``. Costs in proportion to
    the state, and only runs when the budget is passed.
    """
    total = sum(s.nbytes for s in states.values())
    if total <= max_bytes:
        return {}
    summaries = {det_id: state.key_summary() for det_id, state in sorted(states.items())}
    ranked_parts = [
        summary.select(pl.lit(det_id).alias("_det"), "_order", "_last", "_bytes")
        for det_id, summary in summaries.items()
        if summary.height
    ]
    if not ranked_parts:
        return {}
    unkeyed = total - sum(float(part["_bytes"].sum()) for part in ranked_parts)
    room = max(target * max_bytes - unkeyed, 0.0)
    ranked = (
        pl.concat(ranked_parts, how="vertical")
        .sort(["_last", "_det", "_order"], descending=[True, False, False], nulls_last=True)
        .with_columns(pl.col("_bytes").cum_sum().alias("_upto"))
        .filter(pl.col("_upto") <= room)
    )
    shed: dict[str, tuple[int, int]] = {}
    for det_id, summary in summaries.items():
        if summary.height == 0:
            continue
        state = states[det_id]
        kept_orders = ranked.filter(pl.col("_det") == det_id).select("_order")
        keep = summary.join(kept_orders, on="_order", how="semi")
        n_keys = summary.height - keep.height
        if n_keys == 0:
            continue
        rows = state.drop_keys(keep)
        state.shed_keys += n_keys
        state.shed_rows += rows
        shed[det_id] = (n_keys, rows)
    return shed
