"""What every parser returns, and the registry of formats.

A parser turns a column of raw lines into a batch in the contract's columns plus the rejects:
lines it could not read, each with its line number and a reason from a fixed set. Parsers
never raise on bad input and never drop a line silently:
``batch.height + rejects.height + skipped == len(lines)``, where ``skipped`` counts the
few lines that are format structure rather than data (the header line of a VPC flow log)
and is 0 for every other format.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import PurePath
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
    "event_id",
    "make_rejects",
    "register_format",
    "source_name",
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
    NO_DATA = "no_data"


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


def make_rejects(lines: pl.DataFrame, reason: pl.Expr | str, fmt: str, source: str) -> pl.DataFrame:
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
    """Where lines come from: ``source`` names the file (``-`` for stdin).

    ``year`` and ``timezone`` only matter for timestamps that lack them (RFC 3164 syslog):
    ``year`` puts every such line in that year; without it each line takes the year that
    places it at or before ``reference`` (the file's modification time; the wall clock
    when that is ``None`` too), so a December line in a file written in January belongs
    to the previous year.
    """

    source: str = "-"
    year: int | None = None
    timezone: str = "UTC"
    reference: datetime | None = None


def source_name(ctx: ParseContext) -> str:
    """The file name events are identified by: the base name of ``ctx.source``, ``-`` for stdin.

    >>> source_name(ParseContext(source="/var/log/nginx/access.log"))
    'access.log'
    """
    if ctx.source in ("", "-"):
        return "-"
    return PurePath(ctx.source).name or ctx.source


def event_id(ctx: ParseContext) -> pl.Expr:
    """``"<file name>:<line number>"`` from the ``line_no`` column (the contract's default id)."""
    return pl.concat_str(pl.lit(source_name(ctx) + ":"), pl.col("line_no").cast(pl.String))


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed chunk: the batch (contract columns) and the rejected lines."""

    batch: pl.DataFrame
    rejects: pl.DataFrame
    #: Lines that are neither events nor rejects (a VPC flow log header line), so that
    #: ``batch.height + rejects.height + skipped == lines in``.
    skipped: int = 0


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
