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


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time (it may be replaced after setup)."""

    def write(self, text: str) -> int:
        import sys

        return sys.stderr.write(text)

    def flush(self) -> None:
        import sys

        sys.stderr.flush()


def setup_logging(level: str = "warning", as_json: bool = False) -> None:
    """structlog on stderr (stdout carries data): readable on a terminal, JSON in services."""
    import logging
    import sys

    import structlog

    numeric = logging.getLevelName(level.upper())
    if not isinstance(numeric, int):
        fail(f"unknown log level {level!r}; use debug, info, warning or error")
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if as_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
    logging.basicConfig(
        level=numeric, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )
