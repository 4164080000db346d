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
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import PurePath
from typing import Final

import polars as pl

from shopwatch.errors import RegistryError

__all__ = [
    "FORMATS",
    "MAX_TIME",
    "MIN_TIME",
    "REJECT_SCHEMA",
    "Format",
    "ParseContext",
    "Parsed",
    "RejectReason",
    "empty_rejects",
    "event_id",
    "int_overflowed",
    "make_rejects",
    "register_format",
    "seconds_to_ns",
    "source_name",
    "valid_time",
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
    #: A number the format defines (bytes, request time, packets...) that does not fit its
    #: field: beyond 64-bit integers, or a duration too long to count in nanoseconds.
    BAD_NUMBER = "bad_number"
    #: A JSON object nested deeper than any event could be (:data:`shopwatch.parse.ecs.MAX_DEPTH`).
    TOO_DEEP = "too_deep"
    #: The parser failed on this line itself (a bug, logged with where it was raised); the other
    #: lines of its chunk are parsed as usual.
    PARSER_ERROR = "parser_error"
    #: The file could not be read on from here (a corrupt or truncated gzip stream); the
    #: reject's ``raw`` says what broke, its ``line_no`` is where the unread rest begins.
    UNREADABLE = "unreadable"


REJECT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "source": pl.String(),
    "line_no": pl.Int64(),
    "raw": pl.String(),
    "reason": pl.String(),
    "format": pl.String(),
}


#: The span of event time every parser accepts (the years 1 to 9999 in UTC, what Python's
#: ``datetime`` can hold): a timestamp outside it, after zone conversion, is ``bad_timestamp``.
MIN_TIME: Final = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME: Final = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)
#: :data:`MIN_TIME` and :data:`MAX_TIME` in epoch seconds.
MIN_EPOCH_S: Final = int(MIN_TIME.timestamp())
MAX_EPOCH_S: Final = int(MAX_TIME.timestamp())
_INT_TEXT = r"^\s*[+-]?[0-9]+\s*$"


def valid_time(ts: pl.Expr) -> pl.Expr:
    """True where ``ts`` (UTC) is set and between :data:`MIN_TIME` and :data:`MAX_TIME`."""
    return ts.is_not_null() & ts.is_between(pl.lit(MIN_TIME), pl.lit(MAX_TIME))


def seconds_to_ns(seconds: pl.Expr) -> pl.Expr:
    """Seconds (any number) as Int64 nanoseconds; null where that does not fit 64 bits.

    Never raises: a value of 1e11 s or ``inf`` is null, so the caller can reject it.
    """
    ns = seconds.cast(pl.Float64, strict=False) * 1e9
    fits = ns.is_finite() & (ns.abs() < 2.0**63)
    return pl.when(fits).then(ns.round().cast(pl.Int64, strict=False)).otherwise(None)


def int_overflowed(text: pl.Expr, value: pl.Expr) -> pl.Expr:
    """True where ``text`` is written as an integer but ``value`` (its Int64 cast) is null."""
    return text.str.contains(_INT_TEXT).fill_null(False) & value.is_null()


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
