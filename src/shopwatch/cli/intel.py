"""``shopwatch intel lookup VALUE`` and ``shopwatch intel status``: what the feeds know.

Both load the configured feeds (``intel:`` settings, plus ``--feeds-config``) the way the
pipeline does: files are read, URLs are asked conditionally, and a feed that fails is
reported, not fatal. Neither writes anything: the feed cache and status in the state
folder belong to the running service (they are read, never written, here).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.cli.common import fail, settings_from
from shopwatch.errors import ConfigError, ContentError

__all__ = ["CONTEXT_HOOKS", "register"]

intel_app = typer.Typer(
    help="Threat-intelligence feeds: look values up, show feed status.", no_args_is_help=True
)

#: Extra context for ``intel lookup`` (geo/ASN, ...): each hook gets the looked-up value
#: and returns a mapping to show, or None when it has nothing to say. Add to this list.
CONTEXT_HOOKS: list[Callable[[str], dict[str, Any] | None]] = []


def _geo_context(value: str) -> dict[str, Any] | None:
    """Country and AS of an address, when the geo tables are installed."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return None
    try:
        import polars as pl

        from shopwatch.enrich.geo import load_tables

        found = load_tables().lookup(pl.Series([value])).row(0, named=True)
    except (ImportError, ConfigError):
        return None
    if not any(v is not None for v in found.values()):
        return None
    return {
        "geo": {
            "country": found["country"],
            "as_number": found["asn"],
            "as_organization": found["organization"],
        }
    }


CONTEXT_HOOKS.append(_geo_context)


def _manager(config: Path | None, feeds_config: Path | None) -> Any:
    from shopwatch.enrich.schedule import FeedManager, load_feed_configs

    settings = settings_from(config)
    intel = settings.intel
    if feeds_config is not None:
        try:
            extra = load_feed_configs(feeds_config)
        except ContentError as err:
            fail(str(err))
        intel = intel.model_copy(update={"feeds": [*intel.feeds, *extra]})
    try:
        return FeedManager.from_settings(
            settings.model_copy(update={"intel": intel}), persist=False
        )
    except ConfigError as err:
        fail(str(err))


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@intel_app.command("lookup")
def lookup(
    value: str = typer.Argument(..., help="An IP address (or a domain, URL or file hash)."),
    feeds_config: Path | None = typer.Option(
        None, "--feeds-config", help="A YAML list of extra feeds."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Explain what the feeds know about VALUE: each matching feed, indicator, confidence, expiry."""
    from shopwatch.enrich.feeds import classify

    if classify(value) is None:
        fail(
            f"{value!r} is not an IP address, network, domain, URL or file hash "
            "(md5, sha1, sha256 or sha512); nothing to look up"
        )
    manager = _manager(config, feeds_config)
    manager.refresh(force=True)
    now = datetime.now(UTC)
    matches = manager.index.explain(value, now=now)
    context: dict[str, Any] = {}
    for hook in CONTEXT_HOOKS:
        context.update(hook(value) or {})
    failed = [s for s in manager.status() if s.last_error]
    if as_json:
        out = {
            "value": value,
            "listed": any(not m.expired for m in matches),
            "matches": [
                {
                    "feed": m.feed,
                    "feed_type": m.feed_type,
                    "type": m.type,
                    "indicator": m.indicator,
                    "confidence": m.confidence,
                    "expires": _iso(m.expires),
                    "expired": m.expired,
                    "note": m.note,
                }
                for m in matches
            ],
            "context": context,
            "feeds": len(manager.feeds),
            "feeds_failed": [s.name for s in failed],
        }
        typer.echo(json.dumps(out, indent=2))
        return
    console = Console()
    if not matches:
        console.print(f"{value}: on none of {len(manager.feeds)} feeds", highlight=False)
    else:
        table = Table(title=f"{value}: {sum(not m.expired for m in matches)} live match(es)")
        for name in ("feed", "type", "indicator", "confidence", "expires", "note"):
            table.add_column(name)
        for m in matches:
            expires = "never" if m.expires is None else m.expires.isoformat()
            if m.expired:
                expires += " (expired)"
            table.add_row(
                m.feed, m.feed_type, m.indicator, str(m.confidence), expires, m.note or ""
            )
        console.print(table)
    for key, info in context.items():
        console.print(f"{key}: {json.dumps(info)}", highlight=False)
    for s in failed:
        Console(stderr=True).print(
            f"[yellow]feed {s.name} not refreshed:[/] {s.last_error}", highlight=False
        )


@intel_app.command("status")
def status(
    feeds_config: Path | None = typer.Option(
        None, "--feeds-config", help="A YAML list of extra feeds."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="YAML settings file."),
    cached: bool = typer.Option(
        False,
        "--cached",
        help="Show what the running service last wrote instead of loading the feeds now.",
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Each feed: entries, expired, rejected lines, last refresh, last error."""
    from shopwatch.enrich.schedule import read_status

    manager = _manager(config, feeds_config)
    rows: list[dict[str, Any]] | None = None
    if cached and manager.state_dir is not None:
        rows = read_status(manager.state_dir)
        if rows is None:
            fail(
                f"no feed status in {manager.state_dir}; is the service running? (drop --cached to load now)"
            )
    if rows is None:
        manager.refresh(force=True)
        rows = [s.to_dict() for s in manager.status()]
    if as_json:
        typer.echo(json.dumps({"feeds": rows}, indent=2))
        return
    table = Table(title="threat-intel feeds")
    for name in (
        "feed",
        "format",
        "entries",
        "expired",
        "rejected",
        "last refresh",
        "errors",
        "last error",
    ):
        table.add_column(name)
    for row in rows:
        table.add_row(
            row["name"],
            row["format"],
            str(row["entries"]),
            str(row["expired"]),
            str(row["rejected"]),
            row["last_refresh"] or "never",
            str(row["errors"]),
            (f"[{row['last_error_reason']}] {row['last_error']}" if row["last_error"] else ""),
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.add_typer(intel_app, name="intel")
