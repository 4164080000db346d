"""Helpers shared by the commands: settings from flags, errors as exit code 2."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console

from shopwatch.config import Settings, load_settings
from shopwatch.errors import ConfigError

__all__ = ["fail", "settings_from"]


def fail(message: str, code: int = 2) -> NoReturn:
    """Print ``message`` on stderr and exit with ``code`` (2: usage or config error)."""
    Console(stderr=True).print(f"[red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def settings_from(config: Path | None, **flags: Any) -> Settings:
    """Settings from an optional file, the environment and command-line flags."""
    try:
        return load_settings(config, **flags)
    except ConfigError as err:
        fail(str(err))
