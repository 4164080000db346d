"""``shopwatch evaluate real``: the shared real logs, what fired per rule and per weak label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.cli.common import fail
from shopwatch.cli.evaluate import (
    JSON_OPTION,
    REQUIRE_OPTION,
    finish,
    optional_settings,
    table_console,
)
from shopwatch.errors import ShopwatchError

__all__ = ["register"]


def _print(figures: dict[str, Any], console: Console) -> None:
    table = Table(title="real logs", show_edge=False)
    for col in (
        "file",
        "weak label",
        "lines",
        "rejected",
        "alerts",
        "addresses",
        "alerted",
        "share",
    ):
        table.add_column(col, justify="left" if col in ("file", "weak label") else "right")
    for entry in figures["files"].values():
        share = entry["share_alerted"]
        table.add_row(
            entry["file"],
            entry["label"] or "-",
            f"{entry['lines']:,}",
            f"{entry['rejected']:,}",
            f"{entry['alerts']:,}",
            f"{entry['addresses']:,}",
            f"{entry['addresses_alerted']:,}",
            "-" if share is None else f"{100 * share:.1f}%",
        )
    console.print(table)
    rules = Table(title="alerts per rule", show_edge=False)
    rules.add_column("file")
    rules.add_column("rule")
    rules.add_column("alerts", justify="right")
    for entry in figures["files"].values():
        for rule_id, n in entry["alerts_by_rule"].items():
            rules.add_row(entry["file"], rule_id, f"{n:,}")
        if not entry["alerts_by_rule"]:
            rules.add_row(entry["file"], "[red](nothing fired)[/]", "0")
    console.print(rules)
    for path in figures["missing"]:
        console.print(f"[yellow]not found, skipped:[/] {path}", highlight=False)


def real_cmd(
    datasets: Path | None = typer.Option(
        None,
        "--datasets",
        envvar="SHOPWATCH_DATASETS",
        help="The shared datasets folder (its access-logs/ and loghub/ are replayed).",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Replay the shared real logs one by one; print what fired per rule and weak label."""
    from shopwatch.evaluate.real import evaluate_real

    if datasets is None:
        fail("give the shared datasets folder with --datasets DIR or SHOPWATCH_DATASETS")
    try:
        figures = evaluate_real(datasets, optional_settings(config))
    except ShopwatchError as err:
        fail(str(err))
    _print(figures, table_console())
    finish(figures, json_out, require)


def register(app: typer.Typer) -> None:
    """Add ``real`` to the evaluate group."""
    app.command("real")(real_cmd)
