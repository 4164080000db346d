"""``shopwatch rules lint`` and ``shopwatch config show``."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import typer
from rich.console import Console
from rich.text import Text

from shopwatch.cli.common import settings_from
from shopwatch.detect.content import load_detectors

__all__ = ["register"]

rules_app = typer.Typer(help="Check detection content.", no_args_is_help=True)
config_app = typer.Typer(help="Inspect settings.", no_args_is_help=True)


@rules_app.command("lint")
def lint(
    rules_dir: list[Path] = typer.Option(
        [], "--rules-dir", help="Extra rule folders (overlay by id)."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
) -> None:
    """Validate every rule file (shipped and yours); exit 1 when any is invalid.

    The same check as at load: each condition runs once through Polars, the engine that
    runs it on every batch, so a regex it refuses is reported with file:line and reason.
    """
    settings = settings_from(config)
    loaded = load_detectors(
        [*settings.rules_dirs, *rules_dir],
        settings.detectors,
        include_disabled=True,
        max_window=timedelta(seconds=settings.runtime.state_max_window_s),
    )
    console = Console(stderr=True, soft_wrap=True)  # one problem, one line: grep-able
    for problem in loaded.errors:
        console.print(Text.assemble(("invalid: ", "red"), str(problem)), highlight=False)
    console.print(f"{len(loaded.detectors)} rules valid, {len(loaded.errors)} invalid")
    if loaded.errors:
        raise typer.Exit(1)


@config_app.command("show")
def show(
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
) -> None:
    """Print the settings in force (defaults < file < environment), secrets masked."""
    typer.echo(json.dumps(settings_from(config).masked(), indent=2))


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(rules_app, name="rules")
    app.add_typer(config_app, name="config")
