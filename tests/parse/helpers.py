"""Helpers shared by the parser tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import polars as pl

from shopwatch.parse import Parsed, parse_file
from shopwatch.parse.read import lines_frame


def frame(lines: Iterable[str]) -> pl.DataFrame:
    """A ``line``/``line_no`` frame numbered from 1."""
    return lines_frame(list(lines))


def parse_all(path: Path | str, fmt: str = "auto", **kwargs: Any) -> Parsed:
    """Every chunk of a file, concatenated (with the summed ``skipped``)."""
    parts = list(parse_file(path, fmt, **kwargs))
    return Parsed(
        pl.concat([p.batch for p in parts]),
        pl.concat([p.rejects for p in parts]),
        sum(p.skipped for p in parts),
    )


def row(parsed: Parsed, line_no: int) -> dict[str, Any]:
    """The non-null fields of the event read from line ``line_no``."""
    hit = parsed.batch.filter(pl.col("event.id").str.ends_with(f":{line_no}"))
    assert hit.height == 1, f"no single event for line {line_no}"
    return {k: v for k, v in hit.row(0, named=True).items() if v is not None}
