"""``shopwatch models``: every learned model and baseline, what it learned and how big it is."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from shopwatch.cli.common import fail, settings_from
from shopwatch.errors import ShopwatchError, StoreError

__all__ = ["register"]


def _when(text: str | None) -> str:
    return text[:16].replace("T", " ") if text else "-"


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("MB", 1 << 20), ("KB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def models(
    replay_files: list[Path] = typer.Option(
        [],
        "--replay",
        help="Learn from these files first (a fresh engine) instead of the saved state.",
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    url: str | None = typer.Option(
        None, "--url", help="Database URL; overrides store.url (SQLite in data_dir by default)."
    ),
    evaluation: Path | None = typer.Option(
        None,
        "--evaluation",
        help="JSON of 'shopwatch evaluate sim --json' (or campaigns): each model's category figures.",
    ),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the list as JSON here."),
) -> None:
    """List every model and baseline: version, what it learns from and up to when, entities,
    state size (total and per entity) and, with --evaluation, its category's figures.

    By default the state is the one ``shopwatch run`` last saved in the store; ``--replay``
    learns from files instead (nothing is saved).
    """
    from shopwatch.pipeline.build import build_engine
    from shopwatch.pipeline.models import list_models

    settings = settings_from(config)
    figures: dict[str, Any] | None = None
    if evaluation is not None:
        try:
            figures = json.loads(evaluation.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            fail(f"{evaluation}: not an evaluate JSON file ({err})")
        if not isinstance(figures, dict):
            fail(f"{evaluation}: not an evaluate JSON file (expected an object)")
    try:
        engine = build_engine(settings)
    except ShopwatchError as err:
        fail(str(err))
    source = ""
    if replay_files:
        from shopwatch.pipeline.replay import replay

        missing = [str(p) for p in replay_files if not p.is_file()]
        if missing:
            fail(f"no such file: {', '.join(missing)}")
        report = replay(
            [str(p) for p in replay_files], engine, year=settings.year, timezone=settings.timezone
        )
        source = f"learned from {report.lines:,} lines of {len(replay_files)} file(s)"
    else:
        from shopwatch.pipeline.service import CHECKPOINT
        from shopwatch.store import Store

        try:
            with Store(url or settings.store_url) as store:
                blob = store.load_checkpoint(CHECKPOINT) if store.revision() else None
                where = store.url
        except StoreError as err:
            fail(str(err), 1)
        if blob is not None:
            engine.restore(blob)
        source = (
            f"{'the state last saved' if blob is not None else 'no saved state yet'} in {where}"
        )
    rows = list_models(engine, figures)
    console = Console(soft_wrap=True, highlight=False)
    for row in rows:
        console.print(f"[bold]{row['model']}[/bold]  {row['version']}")
        console.print(f"  learns from: {row['learns_from']}")
        events = (
            f"; {row['events_learned']:,} events learned"
            if row["events_learned"] is not None
            else ""
        )
        warm = f", {row['warm_entities']:,} past warm-up" if "warm_entities" in row else ""
        span = f"{_when(row['first_event'])} to " if row["first_event"] else "up to "
        console.print(
            f"  {row['entities']:,} entities ({row['entity']}){warm}{events};"
            f" {span}{_when(row['last_event'])}"
        )
        console.print(
            f"  state: {_size(row['state_bytes'])} ({_size(row['bytes_per_entity'])} per entity)"
        )
        ev = row.get("evaluation")
        if ev and ev.get("precision") is not None and ev.get("recall") is not None:
            console.print(
                f"  evaluation ({row['category']}): precision {ev['precision']:.1%},"
                f" recall {ev['recall']:.1%} of {ev['campaigns']} campaigns"
            )
        if ev and ev.get("pr_auc") is not None:

            def auc(value: float | None) -> str:
                return "-" if value is None else f"{value:.3f}"

            console.print(
                f"  evaluation (every order): PR-AUC {auc(ev['pr_auc'])} over"
                f" {ev.get('orders')} orders ({ev.get('fraud_orders')} fraud); later half"
                f" {auc(ev.get('pr_auc_later_half'))}, with labels"
                f" {auc(ev.get('pr_auc_later_half_with_labels'))}"
                f" (label model {ev.get('label_model_version') or '-'})"
            )
    console.print(f"{len(rows)} models ({source})")
    engine.close()
    if json_out is not None:
        json_out.write_text(json.dumps(rows, indent=2, default=str) + "\n", encoding="utf-8")


def register(app: typer.Typer) -> None:
    """Add ``models`` to ``app``."""
    app.command("models")(models)
