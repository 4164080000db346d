"""Keyed state: compact per-entity tables, bounded by age and key count, snapshotted.

A detector keeps its memory here and nowhere else. Each named table is a Polars frame
that must carry the detector's key columns and a ``_ts`` column (event time of the row's
last activity). :meth:`KeyedState.evict` drops rows older than ``max_age`` behind the
watermark and, past ``max_keys`` distinct keys, the keys seen least recently.

The engine sets :attr:`KeyedState.clock`, its event-time "now" that no single event can
move (see :mod:`shopwatch.pipeline.engine`); detectors trim what they keep against it
rather than against the newest event they were given, so one event dated 9999 cannot
make a detector drop the windows of every other key.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import polars as pl

__all__ = ["EARLIEST", "LATEST", "KeyedState", "shift_time"]

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
