"""``shopwatch simulate``: write simulated shop traffic with attack campaigns and ground truth."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from shopwatch.cli.common import fail
from shopwatch.errors import ShopwatchError

__all__ = ["register"]


def _parse_start(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"--start {text!r} is not an ISO 8601 date-time; write e.g. 2025-06-03T08:00:00Z")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _parse_campaigns(text: str | None) -> list[str] | None:
    if text is None or text.strip().lower() == "all":
        return None
    if text.strip().lower() in ("", "none"):
        return []
    return [part.strip() for part in text.split(",") if part.strip()]


def simulate_cmd(
    out: Path = typer.Option(..., "--out", "-o", help="Folder to write the files into (created)."),
    minutes: float = typer.Option(
        60.0, "--minutes", "-m", min=0.1, help="Length of the run in event time."
    ),
    seed: int = typer.Option(0, "--seed", "-s", help="Same seed, same files."),
    start: str | None = typer.Option(
        None, "--start", help="Event time of the start (ISO 8601, UTC if no zone)."
    ),
    customers: int = typer.Option(
        5000, "--customers", min=50, help="Registered customers of the shop."
    ),
    campaigns: str | None = typer.Option(
        None,
        "--campaigns",
        help="Comma-separated campaign kinds (each runs loud and low-and-slow), 'all' (default) or 'none'.",
    ),
    history_days: float = typer.Option(
        90.0,
        "--history-days",
        min=0.0,
        help="Days of the customers' past logins and orders written first (0: none).",
    ),
    warmup_hours: float = typer.Option(
        24.0,
        "--warmup-hours",
        min=0.0,
        help="Hours of the shop's metric samples and vendor calls written first (0: none).",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary."),
) -> None:
    """Write access.log, events.ndjson, auth.log, vpcflow.log and ground_truth.json."""
    from shopwatch.sim import DEFAULT_START, KINDS, simulate

    kinds = _parse_campaigns(campaigns)
    if kinds:
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            fail(f"unknown campaign kind(s) {', '.join(unknown)}; known: {', '.join(KINDS)}")
    begin = _parse_start(start) or DEFAULT_START
    try:
        result = simulate(
            out,
            minutes,
            seed,
            start=begin,
            customers=customers,
            campaigns=kinds,
            history_days=history_days,
            warmup_hours=warmup_hours,
        )
    except ShopwatchError as err:
        fail(str(err))
    if quiet:
        return
    console = Console()
    console.print(
        f"[bold]simulated[/] {minutes:g} min from {result.start.isoformat()} (seed {seed}, "
        f"{customers:,} customers) → {result.out_dir}"
    )
    files = Table(show_edge=False)
    files.add_column("file")
    files.add_column("format")
    files.add_column("lines", justify="right")
    for fmt, path in result.files.items():
        files.add_row(path.name, fmt, f"{result.lines[fmt]:,}")
    files.add_row(result.ground_truth.name, "ground truth", f"{len(result.campaigns):,} campaigns")
    console.print(files)
    if result.campaigns:
        table = Table(title="campaigns", show_edge=False)
        for col in ("id", "variant", "benign", "category", "start", "end", "sources"):
            table.add_column(col)
        for c in result.campaigns:
            ips = c["entities"].get("source.ip", [])
            table.add_row(
                c["id"],
                c.get("variant", "loud"),
                "yes" if c["benign"] else "no",
                c["rule.category"],
                c["start"][11:19],
                c["end"][11:19],
                f"{len(ips)} IP" + ("s" if len(ips) != 1 else ""),
            )
        console.print(table)


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("simulate")(simulate_cmd)
