"""Commands for the database: ``shopwatch db upgrade`` and ``shopwatch db status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from shopwatch.cli.common import fail, settings_from
from shopwatch.errors import StoreError

__all__ = ["register"]

db_app = typer.Typer(
    name="db",
    help="The database: schema migrations and status.",
    no_args_is_help=True,
)

_CONFIG = typer.Option(None, "--config", "-c", help="YAML settings file.")
_URL = typer.Option(
    None, "--url", help="Database URL; overrides store.url (SQLite in data_dir by default)."
)


def _url(config: Path | None, url: str | None) -> str:
    return url or settings_from(config).store_url


@db_app.command("upgrade")
def upgrade(config: Path | None = _CONFIG, url: str | None = _URL) -> None:
    """Migrate the database to the newest schema (creates it when empty)."""
    from shopwatch.store import Store, head_revision

    try:
        with Store(_url(config, url)) as store:
            before = store.revision()
            store.migrate()
            after = store.revision()
            where = store.url
    except StoreError as err:
        fail(str(err), 1)
    if before == after:
        typer.echo(f"{where}: already at revision {after} (newest: {head_revision()})")
    else:
        typer.echo(f"{where}: upgraded from {before or 'an empty database'} to revision {after}")


@db_app.command("status")
def status(
    config: Path | None = _CONFIG,
    url: str | None = _URL,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of text."),
) -> None:
    """Show the database URL (password masked), its schema revision and what it holds.

    Exits 0 when the database is reachable, even when it needs an upgrade (the output
    says so); 1 when it cannot be reached.
    """
    from shopwatch.store import Store, head_revision

    info: dict[str, Any] = {}
    try:
        with Store(_url(config, url)) as store:
            revision = store.revision()
            info = {
                "url": store.url,
                "dialect": store.dialect,
                "revision": revision,
                "head": head_revision(),
                "up_to_date": revision == head_revision(),
                "alerts": store.count_alerts() if revision == head_revision() else None,
            }
    except StoreError as err:
        fail(str(err), 1)
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console(highlight=False)
    console.print(f"database  {info['url']} ({info['dialect']})")
    console.print(f"revision  {info['revision'] or 'none (empty database)'}, newest {info['head']}")
    if info["up_to_date"]:
        console.print(f"alerts    {info['alerts']:,}")
        console.print("[green]up to date[/]")
    else:
        console.print("[yellow]needs an upgrade:[/] run `shopwatch db upgrade`")


def register(app: typer.Typer) -> None:
    """Add the ``db`` sub-commands to ``app``."""
    app.add_typer(db_app, name="db")
