"""Commands that run the pipeline: ``replay`` and ``detectors``."""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import orjson
import polars as pl
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from shopwatch.cli.common import fail, settings_from
from shopwatch.config import Settings
from shopwatch.contract import alert_rows_to_dicts
from shopwatch.detect.content import load_detectors
from shopwatch.errors import ShopwatchError
from shopwatch.pipeline.build import build_engine

__all__ = ["register"]


def _token(settings: Settings, given: str | None) -> str:
    """The API token: ``--token``, else the settings' ``web.token``, else the data folder's."""
    if given:
        return given
    if settings.web.token is not None:
        return settings.web.token.get_secret_value()
    path = settings.data_dir / "web-token"
    if path.is_file() and path.read_text(encoding="utf-8").strip():
        return path.read_text(encoding="utf-8").strip()
    fail(f"no API token: pass --token, set web.token, or give the service's --config ({path})")


def _live_status(url: str, token: str) -> dict[str, dict[str, Any]]:
    """Detector health of the service at ``url``, from its authenticated ``/api/stats``."""
    import httpx

    endpoint = url.rstrip("/") + "/api/stats"
    try:
        response = httpx.get(endpoint, headers={"Authorization": f"Bearer {token}"}, timeout=10.0)
    except httpx.HTTPError as err:
        fail(f"cannot reach the service at {url}: {err}")
    if response.status_code == 401:
        fail(f"the service at {url} refused the API token (401): check --token or web.token")
    if response.status_code != 200:
        fail(f"{endpoint} answered {response.status_code}: {response.text[:200]}")
    try:
        found = response.json().get("runtime", {}).get("detectors")
    except (ValueError, AttributeError):
        found = None
    if not isinstance(found, dict):
        fail(f"the service at {url} reports no detector status in /api/stats")
    return found


def detectors(
    rules_dir: list[Path] = typer.Option(
        [], "--rules-dir", help="Extra rule folders (overlay by id)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    url: str | None = typer.Option(
        None, "--url", help="A running service's web address: show its detectors' live status."
    ),
    token: str | None = typer.Option(
        None, "--token", help="API token for --url (default: web.token, else data_dir/web-token)."
    ),
) -> None:
    """List every registered detector with its category, keys and status.

    Status is ``ok`` for a rule that passed the load checks; with ``--url`` it is the
    running service's: ``ok``, or ``failing`` with the error count and the last error
    (``not running`` for a rule the service has not loaded). Rules that cannot be loaded
    are listed on stderr with the reason.
    """
    settings = settings_from(config)
    loaded = load_detectors(
        [*settings.rules_dirs, *rules_dir],
        settings.detectors,
        include_disabled=True,
        max_window=timedelta(seconds=settings.runtime.state_max_window_s),
        sigma_rules=settings.detect.sigma_rules,
    )
    live = _live_status(url, _token(settings, token)) if url else None
    idle: dict[str, Any] = {"status": "not running", "errors": 0, "last_error": None}
    ok: dict[str, Any] = {"status": "ok", "errors": 0, "last_error": None}
    rows: list[dict[str, Any]] = []
    for d in sorted(loaded.detectors, key=lambda d: d.id):
        health = ok if live is None else live.get(d.id, idle)
        rows.append(
            {
                "id": d.id,
                "kind": d.spec.kind,
                "category": d.category,
                "severity": d.spec.severity,
                "keys": list(d.keys),
                "enabled": d.spec.enabled,
                "technique": d.spec.technique,
                "description": d.spec.description,
                "status": health.get("status", "ok"),
                "errors": int(health.get("errors", 0)),
                "last_error": health.get("last_error"),
            }
        )
    known = {row["id"] for row in rows}
    for det_id, health in sorted((live or {}).items()):  # loaded by the service only
        if det_id not in known:
            rows.append(
                {
                    "id": det_id,
                    "status": health.get("status", "ok"),
                    "errors": int(health.get("errors", 0)),
                    "last_error": health.get("last_error"),
                }
            )
    err = Console(stderr=True, soft_wrap=True)
    for problem in loaded.errors:
        err.print(Text.assemble(("skipped: ", "yellow"), str(problem)), highlight=False)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    failing = sum(1 for row in rows if row["status"] == "failing")
    table = Table(title=f"{len(rows)} detectors" + (f", {failing} failing" if failing else ""))
    for col in ("id", "kind", "category", "severity", "keys", "enabled", "status", "errors"):
        table.add_column(col, no_wrap=col in ("id", "status"))
    for row in rows:
        failed = row["status"] == "failing"
        table.add_row(
            row["id"],
            row.get("kind", "-"),
            row.get("category", "-"),
            row.get("severity", "-"),
            ", ".join(row.get("keys", ())) or "-",
            "yes" if row.get("enabled", True) else "no",
            Text(row["status"], style="red" if failed else ""),
            str(row["errors"]),
        )
    out = Console()
    out.print(table)
    for row in rows:
        if row["last_error"]:
            out.print(
                Text.assemble((f"{row['id']}: ", "bold"), f"last error: {row['last_error']}"),
                soft_wrap=True,
            )


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


def _print_summary(report: Any, out: Path | str | None, console: Console) -> None:
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
    exempted = getattr(report, "exempted", None)
    if exempted:
        console.print(
            "requests not alerted because only fields exempt from the rule matched "
            "(detect.exemptions): "
            + ", ".join(f"{rule} {n:,}" for rule, n in exempted.most_common())
        )


def replay_cmd(
    files: list[str] = typer.Argument(..., help="Log files (.gz too); '-' reads standard input."),
    fmt: str = typer.Option(
        "auto", "--format", "-f", help="nginx, apache, ecs, syslog, vpcflow or auto (per file)."
    ),
    alerts_out: Path | None = typer.Option(
        None,
        "--alerts",
        "-o",
        help="Write alerts as JSON lines here; '-' is standard output (the summary stays on stderr).",
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
    to_stdout = alerts_out is not None and str(alerts_out) == "-"
    if to_stdout:
        handle = sys.stdout.buffer
    elif alerts_out is not None:
        alerts_out.parent.mkdir(parents=True, exist_ok=True)
        handle = alerts_out.open("wb")
    if handle is not None:

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
            if to_stdout:
                handle.flush()
            else:
                handle.close()
        if store is not None:
            store.close()
    if not quiet:
        _print_summary(report, "standard output" if to_stdout else alerts_out, console)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("replay")(replay_cmd)
    app.command("detectors")(detectors)
