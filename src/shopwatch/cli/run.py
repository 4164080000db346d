"""Commands that run the pipeline: ``replay`` and ``detectors``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopwatch.cli.common import fail, settings_from
from shopwatch.contract import alert_rows_to_dicts
from shopwatch.detect.content import load_detectors
from shopwatch.errors import ShopwatchError
from shopwatch.pipeline.build import build_engine

__all__ = ["register"]


def detectors(
    rules_dir: list[Path] = typer.Option(
        [], "--rules-dir", help="Extra rule folders (overlay by id)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """List every registered detector with its category and keys."""
    loaded = load_detectors(rules_dir, include_disabled=True)
    rows = [
        {
            "id": d.id,
            "kind": d.spec.kind,
            "category": d.category,
            "severity": d.spec.severity,
            "keys": list(d.keys),
            "enabled": d.spec.enabled,
            "technique": d.spec.technique,
            "description": d.spec.description,
        }
        for d in sorted(loaded.detectors, key=lambda d: d.id)
    ]
    err = Console(stderr=True)
    for problem in loaded.errors:
        err.print(f"[yellow]skipped:[/] {problem}")
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} detectors")
    for col in ("id", "kind", "category", "severity", "keys", "enabled"):
        table.add_column(col)
    for d in sorted(loaded.detectors, key=lambda d: d.id):
        table.add_row(
            d.id,
            d.spec.kind,
            d.category,
            d.spec.severity,
            ", ".join(d.keys) or "-",
            "yes" if d.spec.enabled else "no",
        )
    Console().print(table)


def _estimate_lines(paths: list[str]) -> int | None:
    """Rough line count of plain files from their size and first 64 KiB (None if unknown)."""
    total = 0
    for path in paths:
        if path == "-" or not os.path.isfile(path):
            return None
        with open(path, "rb") as fh:
            head = fh.read(65536)
        if head[:2] == b"\x1f\x8b":
            return None
        lines = head.count(b"\n") or 1
        total += int(os.path.getsize(path) / (len(head) / lines))
    return total


def _print_summary(report: Any, out: Path | None, console: Console) -> None:
    rate = report.lines / report.elapsed_s if report.elapsed_s else 0.0
    console.print(
        f"[bold]replayed[/] {report.lines:,} lines from {len(report.files)} file(s) in "
        f"{report.elapsed_s:.2f}s ({rate:,.0f} lines/s): {report.events:,} events, "
        f"{report.rejected:,} malformed, [bold]{report.alerts:,} alerts[/]"
        + (f" → {out}" if out else "")
    )
    if report.first_event is not None:
        console.print(
            f"event time {report.first_event.isoformat()} … {report.last_event.isoformat() if report.last_event else ''}"
        )
    files = Table(title="inputs", show_edge=False)
    for col in ("file", "format", "lines", "events", "malformed"):
        files.add_column(col)
    for f in report.files:
        bad = ", ".join(f"{r} {n:,}" for r, n in f.rejected.most_common()) or "0"
        files.add_row(f.path, f.format, f"{f.lines:,}", f"{f.events:,}", bad)
    console.print(files)
    for f in report.files:
        if f.examples:
            console.print(f"[yellow]malformed lines in {f.path}[/] (first {len(f.examples)}):")
            for line_no, reason, raw in f.examples:
                console.print(f"  line {line_no}: {reason}: {raw!r}", markup=False, highlight=False)
    if report.alerts:
        rules = Table(title="alerts by rule", show_edge=False)
        rules.add_column("rule")
        rules.add_column("alerts", justify="right")
        for rule_id, n in report.alerts_by_rule.most_common():
            rules.add_row(rule_id, f"{n:,}")
        console.print(rules)


def replay_cmd(
    files: list[str] = typer.Argument(..., help="Log files (.gz too); '-' reads standard input."),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="nginx, apache, ecs, syslog, vpcflow or auto (per file)."
    ),
    alerts_out: Path | None = typer.Option(
        None, "--alerts", "-o", help="Write alerts as JSON lines here."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    year: int | None = typer.Option(
        None, "--year", help="Year of RFC 3164 syslog lines (they carry none)."
    ),
    save: bool = typer.Option(
        False, "--save", help="Also store the alerts in the configured database."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary, no progress."),
) -> None:
    """Run the full detection pipeline over files in event time; same input, same alerts."""
    from shopwatch.pipeline.replay import replay

    console = Console(stderr=True)
    settings = settings_from(config)
    for path in files:
        if path != "-" and not Path(path).is_file():
            fail(f"no such file: {path}")
    sinks = []
    handle: IO[bytes] | None = None
    if alerts_out is not None:
        alerts_out.parent.mkdir(parents=True, exist_ok=True)
        handle = alerts_out.open("wb")

        def write(alerts: pl.DataFrame) -> None:
            assert handle is not None
            handle.write(b"".join(orjson.dumps(a) + b"\n" for a in alert_rows_to_dicts(alerts)))

        sinks.append(write)
    store = None
    if save:
        from shopwatch.store import Store

        store = Store.open(settings.store_url)

        def persist(alerts: pl.DataFrame) -> None:
            from shopwatch.contract import Alert

            assert store is not None
            store.save_alerts([Alert.from_row(r) for r in alerts.iter_rows(named=True)])

        sinks.append(persist)
    engine = None
    try:
        engine = build_engine(settings, sinks=sinks)
        total = _estimate_lines(files)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} lines"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=quiet or not console.is_terminal,
        ) as progress:
            task = progress.add_task("replay", total=total)
            report = replay(
                files,
                engine,
                fmt=fmt,
                year=year,
                timezone=settings.timezone,
                on_progress=lambda n: progress.advance(task, n),
            )
    except ShopwatchError as err:
        fail(str(err))
    finally:
        if engine is not None:
            engine.close()
        if handle is not None:
            handle.close()
        if store is not None:
            store.close()
    if not quiet:
        _print_summary(report, alerts_out, console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("replay")(replay_cmd)
    app.command("detectors")(detectors)
