"""The parse stage: raw lines in, contract batches and counted rejects out.

Formats (the contract's names): ``nginx`` (alias ``apache``), ``ecs``, ``syslog``,
``vpcflow``; ``auto`` sniffs each file's first 50 non-empty lines. Every parser keeps the
invariant ``batch.height + rejects.height + skipped == lines in``.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import structlog
from polars.exceptions import PanicException
from prometheus_client import Counter

from shopwatch.contract import empty_events
from shopwatch.errors import ConfigError
from shopwatch.parse.auto import SAMPLE_LINES, sniff_format, sniff_scores
from shopwatch.parse.base import (
    FORMATS,
    REJECT_SCHEMA,
    Format,
    ParseContext,
    Parsed,
    ParseFn,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
    register_format,
    source_name,
)
from shopwatch.parse.ecs import parse_ecs, sniff_ecs
from shopwatch.parse.nginx import parse_access, sniff_access
from shopwatch.parse.read import LINES_SCHEMA, file_mtime, file_year_hint, iter_chunks
from shopwatch.parse.syslog import parse_syslog, resolve_year, sniff_syslog
from shopwatch.parse.vpcflow import parse_vpcflow, sniff_vpcflow

__all__ = [
    "FORMATS",
    "REJECT_SCHEMA",
    "Format",
    "ParseContext",
    "Parsed",
    "RejectReason",
    "empty_rejects",
    "event_id",
    "file_year_hint",
    "format_names",
    "iter_chunks",
    "make_rejects",
    "parse_file",
    "parse_frame",
    "register_format",
    "resolve_year",
    "sniff_format",
    "sniff_scores",
    "source_name",
]

log = structlog.get_logger("shopwatch.parse")

AUTO: Final = "auto"
LINES = Counter("shopwatch_parse_lines_total", "Lines read by the parsers", ["format"])
REJECTED = Counter(
    "shopwatch_parse_rejected_total", "Lines the parsers could not read", ["format", "reason"]
)

for _name, _parse, _sniff in (
    ("ecs", parse_ecs, sniff_ecs),
    ("vpcflow", parse_vpcflow, sniff_vpcflow),
    ("nginx", parse_access, sniff_access),
    ("syslog", parse_syslog, sniff_syslog),
    ("apache", parse_access, sniff_access),
):
    if _name not in FORMATS:
        register_format(_name, _parse, _sniff)


def format_names() -> list[str]:
    """The registered format names, and ``auto``."""
    return [*FORMATS, AUTO]


def _check(fmt: str) -> None:
    if fmt != AUTO and fmt not in FORMATS:
        raise ConfigError(
            f"unknown input format {fmt!r}; known formats: {', '.join(format_names())}"
        )


def _unknown(lines: pl.DataFrame, ctx: ParseContext) -> Parsed:
    return Parsed(
        empty_events(), make_rejects(lines, RejectReason.UNKNOWN_FORMAT, AUTO, ctx.source)
    )


def parse_frame(lines: pl.DataFrame, fmt: str, ctx: ParseContext) -> Parsed:
    """Parse one frame of ``line``/``line_no`` in format ``fmt`` (``auto``: sniff this frame).

    Raises ConfigError for an unknown format name; lines of a format that cannot be
    sniffed are all rejects with reason ``unknown_format``.
    """
    _check(fmt)
    if fmt == AUTO:
        sample = [s for s in lines["line"].head(SAMPLE_LINES * 4).to_list() if s and s.strip()]
        fmt = sniff_format(sample) or AUTO
    parsed = _unknown(lines, ctx) if fmt == AUTO else _isolate(FORMATS[fmt].parse, lines, fmt, ctx)
    LINES.labels(fmt).inc(lines.height)
    if parsed.rejects.height:
        for reason, count in parsed.rejects.group_by("reason").len().iter_rows():
            REJECTED.labels(fmt, reason).inc(count)
    return parsed


def _isolate(parse: ParseFn, lines: pl.DataFrame, fmt: str, ctx: ParseContext) -> Parsed:
    """``parse(lines)``; should the parser itself fail, only the lines it fails on are lost.

    Parsers never raise on bad input by design, so a raise is a parser bug. Rather than let
    it fail the whole chunk (in live mode: a batch whose offsets are then never acked), the
    chunk is split in halves until the failing lines stand alone; each becomes a
    ``parser_error`` reject, logged with the error and where it was raised. Costs nothing while
    parsers hold to their contract; ``k`` bad lines cost about ``2 k log n`` parser calls.
    """
    try:
        return parse(lines, ctx)
    except (Exception, PanicException) as err:  # a parser bug: isolate it, never fail the chunk
        frames = traceback.extract_tb(err.__traceback__)
        log.error(
            "parser_failed",
            source=source_name(ctx),
            format=fmt,
            lines=lines.height,
            first_line_no=int(lines["line_no"][0]) if lines.height else None,
            error=f"{type(err).__name__}: {err}"[:500],
            # where, not the locals: they hold the lines, which may carry secrets
            where=[f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in frames[-4:]],
        )
        if lines.height <= 1:
            return Parsed(
                empty_events(), make_rejects(lines, RejectReason.PARSER_ERROR, fmt, ctx.source)
            )
    half = lines.height // 2
    first = _isolate(parse, lines.slice(0, half), fmt, ctx)
    second = _isolate(parse, lines.slice(half), fmt, ctx)
    return Parsed(
        pl.concat([first.batch, second.batch], how="vertical_relaxed"),
        pl.concat([first.rejects, second.rejects], how="vertical_relaxed"),
        first.skipped + second.skipped,
    )


def parse_file(
    path: str | Path,
    fmt: str = AUTO,
    *,
    chunk_lines: int = 200_000,
    year: int | None = None,
    timezone: str = "UTC",
) -> Iterator[Parsed]:
    """Parse a plain file, a gzip file or standard input (``-``) chunk by chunk.

    ``auto`` sniffs the first 50 non-empty lines once for the whole file. RFC 3164 dates
    take ``year`` when given, else the year that puts them at or before the file's
    modification time (the wall clock for standard input). Raises ConfigError for an
    unknown format name before reading anything. A stream that breaks (a corrupt or
    truncated gzip file) ends in one ``unreadable`` reject after the lines read before.
    """
    _check(fmt)
    ctx = ParseContext(source=str(path), year=year, timezone=timezone, reference=file_mtime(path))
    broke: list[tuple[int, str]] = []
    chunks = iter_chunks(path, chunk_lines, on_unreadable=lambda n, why: broke.append((n, why)))
    held: list[pl.DataFrame] = []
    if fmt == AUTO:
        sample: list[str] = []
        for chunk in chunks:
            held.append(chunk)
            sample.extend(s for s in chunk["line"].to_list() if s.strip())
            if len(sample) >= SAMPLE_LINES:
                break
        fmt = sniff_format(sample) or AUTO
        log.info("format_sniffed", source=source_name(ctx), format=fmt, scores=sniff_scores(sample))
    lines = events = rejected = 0
    for chunk in _chain(held, chunks):
        parsed = _unknown(chunk, ctx) if fmt == AUTO else parse_frame(chunk, fmt, ctx)
        lines += chunk.height
        events += parsed.batch.height
        rejected += parsed.rejects.height
        log.debug(
            "chunk_parsed",
            source=source_name(ctx),
            format=fmt,
            lines=chunk.height,
            events=parsed.batch.height,
            rejected=parsed.rejects.height,
        )
        yield parsed
    if broke:
        line_no, why = broke[0]
        log.warning("input_unreadable", source=source_name(ctx), line_no=line_no, error=why)
        stop = pl.DataFrame({"line": [why], "line_no": [line_no]}, schema=LINES_SCHEMA)
        parsed = Parsed(
            empty_events(), make_rejects(stop, RejectReason.UNREADABLE, fmt, ctx.source)
        )
        lines += 1
        rejected += 1
        REJECTED.labels(fmt, RejectReason.UNREADABLE.value).inc()
        yield parsed
    log.info(
        "file_parsed",
        source=source_name(ctx),
        format=fmt,
        lines=lines,
        events=events,
        rejected=rejected,
    )


def _chain(held: list[pl.DataFrame], rest: Iterator[pl.DataFrame]) -> Iterator[pl.DataFrame]:
    yield from held
    yield from rest
