"""Keyed state: compact per-entity tables, bounded by age and key count, snapshotted.

A detector keeps its memory here and nowhere else. Each named table is a Polars frame
that must carry the detector's key columns and a ``_ts`` column (event time of the row's
last activity). :meth:`KeyedState.evict` drops rows older than ``max_age`` behind the
watermark and, past ``max_keys`` distinct keys, the keys seen least recently.
"""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import polars as pl

__all__ = ["KeyedState"]


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
                frame = frame.filter(pl.col("_ts") >= self.watermark - self.max_age)
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
