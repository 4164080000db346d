"""What every parser returns, and the registry of formats.

A parser turns a column of raw lines into a batch in the contract's columns plus the rejects:
lines it could not read, each with its line number and a reason from a fixed set. Parsers
never raise on bad input and never drop a line silently:
``batch.height + rejects.height == len(lines)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import polars as pl

from shopwatch.errors import RegistryError

__all__ = [
    "FORMATS",
    "REJECT_SCHEMA",
    "Format",
    "ParseContext",
    "Parsed",
    "RejectReason",
    "empty_rejects",
    "make_rejects",
    "register_format",
]


class RejectReason(StrEnum):
    """Why a line was rejected; fit to be a metric label."""

    NO_MATCH = "no_match"
    BAD_TIMESTAMP = "bad_timestamp"
    INVALID_JSON = "invalid_json"
    NOT_AN_OBJECT = "not_an_object"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    EMPTY = "empty"
    UNKNOWN_FORMAT = "unknown_format"


REJECT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "source": pl.String(),
    "line_no": pl.Int64(),
    "raw": pl.String(),
    "reason": pl.String(),
    "format": pl.String(),
}


def empty_rejects() -> pl.DataFrame:
    """A zero-row rejects frame."""
    return pl.DataFrame(schema=REJECT_SCHEMA)


def make_rejects(
    lines: pl.DataFrame, reason: pl.Expr | str, fmt: str, source: str
) -> pl.DataFrame:
    """Rejects from a frame with columns ``line`` and ``line_no`` (raw cut to 512 chars)."""
    reason_expr = pl.lit(reason) if isinstance(reason, str) else reason
    return lines.select(
        pl.lit(source).alias("source"),
        pl.col("line_no").cast(pl.Int64),
        pl.col("line").str.slice(0, 512).alias("raw"),
        reason_expr.cast(pl.String).alias("reason"),
        pl.lit(fmt).alias("format"),
    )


@dataclass(frozen=True, slots=True)
class ParseContext:
    """Where lines come from: ``source`` names the file (``-`` for stdin)."""

    source: str = "-"
    year: int | None = None
    timezone: str = "UTC"


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed chunk: the batch (contract columns) and the rejected lines."""

    batch: pl.DataFrame
    rejects: pl.DataFrame


#: A parser takes a frame with ``line`` (String) and ``line_no`` (Int64, 1-based).
ParseFn = Callable[[pl.DataFrame, ParseContext], Parsed]
#: A sniffer returns the share (0..1) of sample lines it recognises.
SniffFn = Callable[[list[str]], float]


@dataclass(frozen=True, slots=True)
class Format:
    """A registered input format."""

    name: str
    parse: ParseFn
    sniff: SniffFn


FORMATS: dict[str, Format] = {}


def register_format(name: str, parse: ParseFn, sniff: SniffFn) -> None:
    """Add a format to the registry (names are the contract's format names)."""
    if name in FORMATS:
        raise RegistryError(f"input format {name!r} is registered twice")
    FORMATS[name] = Format(name, parse, sniff)
