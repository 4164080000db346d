"""Replay: files in, alerts out, in event time — exactly what live monitoring would have said.

Files are parsed in chunks, merged by timestamp (:func:`merge_by_time`) and fed to one
Engine. Malformed lines are counted per file and reason and listed with line numbers; they
never stop the run. The same input gives the same alerts, run after run.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

import polars as pl

from shopwatch.parse import parse_file, sniff_format
from shopwatch.parse.base import Parsed
from shopwatch.parse.read import iter_chunks
from shopwatch.pipeline.engine import SOURCE, Engine, merge_by_time
from shopwatch.pipeline.merge import expand_matches

__all__ = ["FileReport", "ReplayReport", "infer_year", "replay"]

MAX_REJECT_EXAMPLES = 20


@dataclass
class FileReport:
    """What one input file gave."""

    path: str
    format: str
    lines: int = 0
    events: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # (line_no, reason, raw)

    def add(self, parsed: Parsed) -> None:
        """Account for one parsed chunk."""
        self.events += parsed.batch.height
        self.lines += parsed.batch.height + parsed.rejects.height
        if parsed.rejects.height:
            for reason, n in parsed.rejects.group_by("reason").len().iter_rows():
                self.rejected[str(reason)] += int(n)
            room = MAX_REJECT_EXAMPLES - len(self.examples)
            if room > 0:
                for line_no, reason, raw in (
                    parsed.rejects.select("line_no", "reason", "raw").head(room).iter_rows()
                ):
                    self.examples.append((int(line_no), str(reason), str(raw)[:200]))


@dataclass
class ReplayReport:
    """The run summary ``shopwatch replay`` prints."""

    files: list[FileReport]
    alerts: int = 0
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    alerts_by_category: Counter[str] = field(default_factory=Counter)
    #: Requests a web signature did not alert on because only exempt fields matched it.
    exempted: Counter[str] = field(default_factory=Counter)
    elapsed_s: float = 0.0
    first_event: datetime | None = None
    last_event: datetime | None = None

    @property
    def lines(self) -> int:
        """Lines read from every file."""
        return sum(f.lines for f in self.files)

    @property
    def events(self) -> int:
        """Events that reached the detectors."""
        return sum(f.events for f in self.files)

    @property
    def rejected(self) -> int:
        """Lines that could not be parsed."""
        return sum(sum(f.rejected.values()) for f in self.files)


def _sample(path: str, n: int = 50) -> list[str]:
    if path == "-":
        return []
    for chunk in iter_chunks(path, chunk_lines=n):
        return [line for line in chunk["line"].to_list() if line.strip()]
    return []


def infer_year(paths: Sequence[str], formats: Sequence[str]) -> int | None:
    """The year of the run's full timestamps (for RFC 3164 lines, which carry none).

    Takes the most common year among the first events of the files that are not syslog;
    ``None`` when there are none (the parser then falls back on each file's mtime).
    """
    years: Counter[int] = Counter()
    for path, fmt in zip(paths, formats, strict=True):
        if fmt == "syslog" or path == "-":
            continue
        for parsed in parse_file(path, fmt, chunk_lines=200):
            ts = parsed.batch["@timestamp"].drop_nulls()
            years.update(int(y) for y in ts.dt.year().to_list())
            break
    return years.most_common(1)[0][0] if years else None


def replay(
    paths: Sequence[str],
    engine: Engine,
    *,
    fmt: str = "auto",
    year: int | None = None,
    timezone: str = "UTC",
    chunk_lines: int = 200_000,
    on_alerts: Callable[[pl.DataFrame], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    on_batch: Callable[[pl.DataFrame], None] | None = None,
) -> ReplayReport:
    """Run every file through ``engine`` in event time; alerts go to ``on_alerts``.

    ``on_batch`` sees each parsed batch (before enrichment) just before the engine does.
    """
    formats = [fmt if fmt != "auto" else (sniff_format(_sample(p)) or "auto") for p in paths]
    if year is None and "syslog" in formats:
        year = infer_year(paths, formats)
    reports = [FileReport(path=p, format=f) for p, f in zip(paths, formats, strict=True)]
    started = time.perf_counter()

    def stream(i: int) -> Iterator[Parsed]:
        # Each file is a source with its own clock: a forged date in one file cannot evict
        # the state that another file's events still need (see pipeline/engine.py).
        name = f"{i}:{Path(paths[i]).name}"
        # Without a year, RFC 3164 dates are placed at or before the file's modification time.
        for parsed in parse_file(
            paths[i], formats[i], chunk_lines=chunk_lines, year=year, timezone=timezone
        ):
            reports[i].add(parsed)
            if on_progress is not None:
                on_progress(parsed.batch.height + parsed.rejects.height)
            yield replace(parsed, batch=parsed.batch.with_columns(pl.lit(name).alias(SOURCE)))

    report = ReplayReport(files=reports)
    merged = merge_by_time(
        [stream(i) for i in range(len(paths))],
        engine.record_rejects,
        outliers=engine.runtime.watermark_outliers,
    )

    def account(alerts: pl.DataFrame) -> None:
        if alerts.height:
            report.alerts += alerts.height
            # a folded alert counts for each rule that matched its request
            for rule_id, n in expand_matches(alerts).group_by("rule.id").len().iter_rows():
                report.alerts_by_rule[str(rule_id)] += int(n)
            for category, n in alerts.group_by("rule.category").len().iter_rows():
                report.alerts_by_category[str(category)] += int(n)
            if on_alerts is not None:
                on_alerts(alerts)

    for batch in merged:
        if report.first_event is None:
            report.first_event = batch["@timestamp"].min()  # type: ignore[assignment]
        report.last_event = batch["@timestamp"].max()  # type: ignore[assignment]
        if on_batch is not None:
            on_batch(batch)
        account(engine.process(batch))
    account(engine.flush())  # logins still waiting for a next request: the files have ended
    report.exempted = Counter(engine.stats.exempted)
    report.elapsed_s = time.perf_counter() - started
    return report
