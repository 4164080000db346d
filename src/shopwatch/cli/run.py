"""Commands that run the pipeline: ``detectors`` (more land here: replay, run, demo)."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.detect.content import load_detectors

__all__ = ["register"]


def detectors(
    rules_dir: list[Path] = typer.Option([], "--rules-dir", help="Extra rule folders (overlay by id)."),
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
    for row in rows:
        table.add_row(
            row["id"], row["kind"], row["category"], row["severity"],
            ", ".join(row["keys"]) or "-", "yes" if row["enabled"] else "no",
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("detectors")(detectors)
