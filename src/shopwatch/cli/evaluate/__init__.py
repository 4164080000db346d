"""``shopwatch evaluate``: backtest the detections against ground truth.

Each subcommand lives in its own module here and adds itself to :data:`evaluate_app`.
Every subcommand prints a table, writes the same figures as JSON with ``--json OUT``, and
checks floors given with ``--require`` (``KEY>=X`` or ``KEY<=X``; ``KEY`` is a dotted path
into the JSON), exiting 3 when one is not met, so CI can hold the line on a figure.
"""

from __future__ import annotations

import importlib
import json
import math
import re
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from shopwatch.cli.common import fail

__all__ = [
    "FLOOR_NOT_MET",
    "JSON_OPTION",
    "REQUIRE_OPTION",
    "check_floors",
    "evaluate_app",
    "finish",
    "register",
    "table_console",
]

#: Exit code when a figure is below (or above) the floor ``--require`` gives.
FLOOR_NOT_MET = 3

evaluate_app = typer.Typer(
    help="Score the detections against ground truth (simulated campaigns, labelled "
    "entities, CSIC 2010, NAB, real logs).",
    no_args_is_help=True,
)

JSON_OPTION: Any = typer.Option(None, "--json", help="Also write the figures as JSON to this file.")
_FLOOR = re.compile(r"^\s*([^\s<>=]+)\s*(>=|<=)\s*(-?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*$")


def _valid_floors(floors: list[str]) -> list[str]:
    """Checks the ``--require`` syntax before any work starts."""
    for text in floors:
        if _FLOOR.match(text) is None:
            raise typer.BadParameter(f"{text!r} is not KEY>=NUMBER or KEY<=NUMBER")
    return floors


REQUIRE_OPTION: Any = typer.Option(
    [],
    "--require",
    callback=_valid_floors,
    help="A floor to hold, e.g. 'recall>=0.5' or 'scores.standard>=20' (dotted JSON path); "
    "exit 3 when it is not met. Repeatable.",
)


def _lookup(node: Any, path: str) -> Any:
    """The value at a dotted ``path``; keys may hold dots themselves (``"0.001"``)."""
    if not path:
        return node
    if not isinstance(node, dict):
        raise KeyError(path)
    keys = [k for k in node if path == k or path.startswith(f"{k}.")]
    if not keys:
        raise KeyError(path)
    key = max(keys, key=len)
    return _lookup(node[key], path[len(key) + 1 :])


def check_floors(figures: dict[str, Any], floors: list[str]) -> list[str]:
    """The floors of ``floors`` that ``figures`` does not meet, as sentences.

    >>> check_floors({"recall": 0.4, "x": {"0.01": 0.2}}, ["recall>=0.5", "x.0.01>=0.1"])
    ['recall is 0.4, below the floor 0.5']
    """
    failed: list[str] = []
    for text in floors:
        m = _FLOOR.match(text)
        if m is None:
            fail(f"--require {text!r} is not KEY>=NUMBER or KEY<=NUMBER")
        key, op, bound = m.group(1), m.group(2), float(m.group(3))
        try:
            value = _lookup(figures, key)
        except KeyError:
            failed.append(f"{key} is not a figure of this evaluation")
            continue
        if not isinstance(value, int | float) or isinstance(value, bool) or math.isnan(value):
            failed.append(f"{key} is {value!r}, not a number")
        elif op == ">=" and value < bound:
            failed.append(f"{key} is {value:.4g}, below the floor {bound:g}")
        elif op == "<=" and value > bound:
            failed.append(f"{key} is {value:.4g}, above the ceiling {bound:g}")
    return failed


def optional_settings(config: Path | None) -> Any:
    """Settings from ``--config`` when given, else ``None`` (an evaluation's defaults)."""
    from shopwatch.cli.common import settings_from

    return settings_from(config) if config is not None else None


def table_console() -> Console:
    """A console for the tables: the terminal's width, or a wide page when piped to a file."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def finish(figures: dict[str, Any], json_out: Path | None, floors: list[str]) -> None:
    """Write ``figures`` to ``json_out`` (if given) and exit 3 if a floor is not met."""
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(figures, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    failed = check_floors(figures, floors)
    if failed:
        console = Console(stderr=True)
        for sentence in failed:
            console.print(f"[red]floor not met:[/] {sentence}", highlight=False)
        raise typer.Exit(FLOOR_NOT_MET)


#: Modules under shopwatch.cli.evaluate with a ``register(evaluate_app)`` function.
_SUBCOMMANDS: tuple[str, ...] = ("campaigns", "truth", "csic", "nab", "real")


def register(app: typer.Typer) -> None:
    """Add ``shopwatch evaluate`` and its subcommands to ``app``."""
    for name in _SUBCOMMANDS:
        importlib.import_module(f"shopwatch.cli.evaluate.{name}").register(evaluate_app)
    app.add_typer(evaluate_app, name="evaluate")
