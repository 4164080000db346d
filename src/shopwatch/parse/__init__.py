"""The parse stage: raw lines in, contract batches and counted rejects out.

Formats (the contract's names): ``nginx`` (alias ``apache``), ``ecs``, ``syslog``,
``vpcflow``; ``auto`` sniffs each file's first 50 non-empty lines. Every parser keeps the
invariant ``batch.height + rejects.height + skipped == lines in``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Final

import polars as pl
import structlog
from prometheus_client import Counter

from shopwatch.errors import ConfigError
from shopwatch.parse.auto import SAMPLE_LINES, sniff_format, sniff_scores
from shopwatch.parse.base import (
    FORMATS,
    REJECT_SCHEMA,
    Format,
    ParseContext,
    Parsed,
    RejectReason,
    empty_rejects,
    event_id,
    make_rejects,
    register_format,
    source_name,
)
from shopwatch.parse.ecs import parse_ecs, sniff_ecs
from shopwatch.parse.nginx import parse_access, sniff_access
from shopwatch.parse.read import file_mtime, file_year_hint, iter_chunks
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
    from shopwatch.contract import empty_events

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
    parsed = _unknown(lines, ctx) if fmt == AUTO else FORMATS[fmt].parse(lines, ctx)
    LINES.labels(fmt).inc(lines.height)
    if parsed.rejects.height:
        for reason, count in parsed.rejects.group_by("reason").len().iter_rows():
            REJECTED.labels(fmt, reason).inc(count)
    return parsed


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
    unknown format name before reading anything.
    """
    _check(fmt)
    ctx = ParseContext(source=str(path), year=year, timezone=timezone, reference=file_mtime(path))
    chunks = iter_chunks(path, chunk_lines)
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
