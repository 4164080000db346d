"""The ``shopwatch`` command: one Typer app; each area registers its commands from its module."""

from __future__ import annotations

import importlib
import sys

import typer

__all__ = ["app", "main"]

app = typer.Typer(
    name="shopwatch",
    help="Real-time threat monitoring and anomaly detection for online shops.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


@app.callback()
def _root(
    log_level: str = typer.Option(
        "warning", "--log-level", envvar="SHOPWATCH_LOG_LEVEL", help="debug, info, warning, error."
    ),
    log_json: bool = typer.Option(
        False, "--log-json", envvar="SHOPWATCH_LOG_JSON", help="Log JSON lines (for services)."
    ),
) -> None:
    """Real-time threat monitoring and anomaly detection for online shops."""
    from shopwatch.cli.common import setup_logging

    setup_logging(log_level, log_json)


#: Modules under shopwatch.cli with a ``register(app)`` function, in help order.
_COMMAND_MODULES: tuple[str, ...] = (
    "live",
    "run",
    "rules",
    "models",
    "db",
    "intel",
    "simulate",
    "evaluate",
)


def _register_all() -> None:
    for name in _COMMAND_MODULES:
        module = importlib.import_module(f"shopwatch.cli.{name}")
        module.register(app)


_register_all()


def main() -> None:
    """Entry point of the console script."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
