"""``shopwatch evaluate truth FILE... --truth CSV``: any log against labelled entities."""

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

__all__ = ["print_labels", "register"]


def print_labels(figures: dict[str, Any], console: Console, title: str = "labels") -> None:
    """Per label detected / total, then the benign and unlabelled entities alerted."""
    table = Table(title=title, show_edge=False)
    for col in ("label", "detected", "total", "share", "rules"):
        table.add_column(col, justify="left" if col in ("label", "rules") else "right")
    for name, v in figures["labels"].items():
        table.add_row(
            name,
            str(v["detected"]),
            str(v["total"]),
            f"{100 * v['share']:.1f}%",
            ", ".join(v["rules"]) or "-",
        )
    console.print(table)
    console.print(
        f"alerts {figures['alerts']:,} · benign entities alerted {figures['benign_alerted']:,}"
        f" · alerted entities not in the labels {figures['unlabelled_alerted']:,}",
        highlight=False,
    )
    if figures["benign_alerted_examples"]:
        console.print("benign alerted: " + ", ".join(figures["benign_alerted_examples"]))
    if figures["unlabelled_alerted_examples"]:
        console.print("unlabelled alerted: " + ", ".join(figures["unlabelled_alerted_examples"]))


def truth_cmd(
    files: list[str] = typer.Argument(..., help="Log files (.gz too) to replay."),
    truth: Path = typer.Option(
        ..., "--truth", help="CSV with columns entity,label[,start,end]; label 'benign' for benign."
    ),
    fmt: str = typer.Option("auto", "--format", "-f", help="Input format, or auto per file."),
    year: int | None = typer.Option(
        None, "--year", help="Year of RFC 3164 syslog lines (default: the labels' first start)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    json_out: Path | None = JSON_OPTION,
    require: list[str] = REQUIRE_OPTION,
) -> None:
    """Replay logs and score the alerts against a CSV of labelled entities."""
    from shopwatch.evaluate.truth import evaluate_truth

    if not truth.is_file():
        fail(f"no such labels file: {truth}")
    try:
        figures = evaluate_truth(files, truth, optional_settings(config), fmt=fmt, year=year)
    except ShopwatchError as err:
        fail(str(err))
    print_labels(figures, table_console())
    finish(figures, json_out, require)


def register(app: typer.Typer) -> None:
    """Add ``truth`` to the evaluate group."""
    app.command("truth")(truth_cmd)
