"""The enrichment stage's one interface: a whole batch in, the same rows with more columns out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import polars as pl

__all__ = ["Enricher"]


@runtime_checkable
class Enricher(Protocol):
    """Adds columns to a batch. Must keep every row, in order; lookups cached per unique value."""

    name: str
    provides: frozenset[str]  # contract columns it fills

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame: ...
