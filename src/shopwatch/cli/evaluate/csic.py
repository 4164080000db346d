"""``shopwatch evaluate csic``: detection and false-positive rates on CSIC 2010 requests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from shopwatch.cli.common import fail, settings_from
from shopwatch.cli.evaluate import JSON_OPTION, REQUIRE_OPTION, finish, table_console
from shopwatch.errors import ShopwatchError
from shopwatch.evaluate.csic import RequestFile, evaluate_csic, read_requests

__all__ = ["csic_cmd", "register"]

MAX_REJECT_EXAMPLES = 5


def _read(path: Path, role: str) -> RequestFile:
    if not path.is_file():
        fail(f"--{role}: no such file: {path}")
    try:
        read = read_requests(path)
    except OSError as err:
        fail(f"--{role}: cannot read {path}: {err}")
    if read.requests == 0:
        fail(
            f"--{role}: {path} holds no HTTP request (no line is a request line such as "
            "'GET http://host/path HTTP/1.1'); give a CSIC 2010 request file"
        )
    return read


def _print(figures: dict[str, Any], files: dict[str, RequestFile], console: Console) -> None:
    table = Table(title="CSIC 2010, per request", show_edge=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("detection rate", f"{figures['detection_rate']:.4f}")
    table.add_row("false-positive rate", f"{figures['false_positive_rate']:.4f}")
    for level, rate in figures["detection_at_fp"].items():
        table.add_row(f"detection at FP <= {level}", f"{rate:.4f}")
    flagged = figures["flagged"]
    table.add_row(
        "anomalous requests (flagged)", f"{figures['anomalous']:,} ({flagged['anomalous']:,})"
    )
    table.add_row("normal requests (flagged)", f"{figures['normal']:,} ({flagged['normal']:,})")
    table.add_row("training requests", f"{figures['train']:,}")
    table.add_row(
        "alerts on training traffic (discarded)", f"{figures['train_alerts_discarded']:,}"
    )
    rejected = figures["rejected"]
    table.add_row(
        "malformed requests, kept unflagged (train / normal / anomalous)",
        f"{rejected['train']:,} / {rejected['normal']:,} / {rejected['anomalous']:,}",
    )
    console.print(table)
    rules = Table(title="requests flagged by rule", show_edge=False)
    rules.add_column("rule")
    rules.add_column("anomalous", justify="right")
    rules.add_column("normal", justify="right")
    for rule_id, counts in figures["rules"].items():
        rules.add_row(rule_id, f"{counts['anomalous']:,}", f"{counts['normal']:,}")
    if not figures["rules"]:
        rules.add_row("(no rule flagged a request)", "0", "0")
    console.print(rules)
    err = Console(stderr=True)
    for role, read in files.items():
        frame = read.rejects
        if frame.height:
            err.print(
                f"[yellow]malformed requests in {role}[/] {read.path} (first {MAX_REJECT_EXAMPLES}):"
            )
            for line_no, reason, raw in (
                frame.select("line_no", "reason", "raw").head(MAX_REJECT_EXAMPLES).iter_rows()
            ):
                err.print(
                    f"  line {line_no}: {reason}: {raw[:120]!r}", markup=False, highlight=False
                )


def csic_cmd(
    train: Path = typer.Option(
        ..., "--train", help="Normal training requests (fed first, not scored)."
    ),
    normal: Path = typer.Option(..., "--normal", help="Normal test requests."),
    anomalous: Path = typer.Option(..., "--anomalous", help="Anomalous test requests."),
    predictions: Path | None = typer.Option(
        None,
        "--predictions",
        help="Write file,index,flagged,score,rejected for every test request (CSV); index "
        "is the request's position in its file from 0, malformed requests included.",
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="YAML settings file (detectors, rules folders, enrichment). Its data_dir is "
        "ignored: the run always uses a temporary data folder and leaves no state behind.",
    ),
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Detection and false-positive rates of the full engine on CSIC 2010 request files.

    Every request is scored on its own: it gets a distinct client address and event id,
    and counts as flagged when an alert names its event id; its score is the highest
    risk_score among those alerts. A malformed request is kept in its place, unflagged
    with score 0, and counted. Files may be gzip or plain.
    """
    settings = settings_from(config)
    files = {
        "train": _read(train, "train"),
        "normal": _read(normal, "normal"),
        "anomalous": _read(anomalous, "anomalous"),
    }
    console = Console(stderr=True)
    total = sum(f.batch.height for f in files.values())
    try:
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,.0f} / {task.total:,.0f} requests"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as progress:
            task = progress.add_task("evaluate csic", total=total)
            result = evaluate_csic(
                files["train"],
                files["normal"],
                files["anomalous"],
                settings=settings,
                on_progress=lambda n: progress.advance(task, n),
            )
    except ShopwatchError as err:
        fail(str(err))
    _print(result.figures, files, table_console())
    if predictions is not None:
        predictions.parent.mkdir(parents=True, exist_ok=True)
        result.predictions.write_csv(predictions)
    finish(result.figures, json_out, require)


def register(app: typer.Typer) -> None:
    """Add ``evaluate csic`` to the evaluate group."""
    app.command("csic")(csic_cmd)
