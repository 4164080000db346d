"""``shopwatch run`` (live monitoring of real sources) and ``shopwatch demo`` (simulated shop)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
import typer
from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from shopwatch.cli.checks import problems, wildcard_listeners
from shopwatch.cli.common import fail, settings_from
from shopwatch.errors import ShopwatchError

__all__ = ["register"]

log = structlog.get_logger("shopwatch.cli")

_SEVERITY_STYLE = {
    "low": "cyan",
    "medium": "yellow",
    "high": "red",
    "critical": "bold white on red",
}


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f} ms"


def render(service: Any, started: float, title: str) -> Group:
    """The terminal summary: throughput, alerts by category, newest alerts."""
    f = service.figures()
    head = Table.grid(padding=(0, 3))
    for _ in range(4):
        head.add_column()
    head.add_row(
        f"[bold]{f['events_per_s']:,.0f}[/] events/s",
        f"{f['events']:,} events",
        f"{f['rejected']:,} malformed · {f['out_of_bounds']:,} out of time bounds",
        f"latency p50 {_fmt_ms(f['latency_p50_ms'])} · p99 {_fmt_ms(f['latency_p99_ms'])}",
    )
    head.add_row(
        f"[bold]{f['alerts']:,}[/] alerts",
        f"queue {f['queued_chunks']:,} chunks",
        f"state {f['state_bytes'] / 1e6:,.1f} MB",
        f"up {timedelta(seconds=int(time.monotonic() - started))}",
    )
    cats = Table(title="alerts by category", show_edge=False, expand=False)
    cats.add_column("category")
    cats.add_column("alerts", justify="right")
    for category, n in sorted(f["alerts_by_category"].items(), key=lambda kv: -kv[1]):
        cats.add_row(category, f"{n:,}")
    newest = Table(title="newest alerts", show_edge=False, expand=True)
    for col in ("time", "severity", "category", "entity", "message"):
        newest.add_column(col, overflow="ellipsis", no_wrap=True)
    for alert in list(service.newest)[:10]:
        entity = ", ".join(f"{v}" for v in alert["entity"].values())
        newest.add_row(
            alert["@timestamp"][11:19],
            Text(alert["severity"], style=_SEVERITY_STYLE.get(alert["severity"], "")),
            alert["rule.category"],
            entity,
            alert["message"],
        )
    footer = (
        f"web UI: {service.web_url}/login (token in {service.data_dir / 'web-token'})"
        if service.web_url
        else ""
    )
    return Group(
        Panel(head, title=title), cats, newest, Text(footer + "   Ctrl-C stops", style="dim")
    )


#: Days of the simulated customers' past the demo replays before it starts.
DEMO_HISTORY_DAYS = 30.0
_PAST_CHUNK = 5_000


def run_feed(
    submit: Callable[..., bool], stop: threading.Event, *, seed: int, speed: float, customers: int
) -> None:
    """Pace the simulator in real time (``speed`` simulated seconds per second) into ``submit``."""
    from shopwatch.sim import LiveFeed

    start = datetime.now(UTC)
    feed = LiveFeed(start, seed=seed, customers=customers)
    line_no: dict[str, int] = {}
    # The customers' last weeks first, so that account profiles know them.
    past = feed.past(DEMO_HISTORY_DAYS)
    for at in range(0, len(past), _PAST_CHUNK):
        if stop.is_set():
            return
        submit("simulator-ecs", "ecs", past[at : at + _PAST_CHUNK], 1 + at)
    line_no["ecs"] = 1 + len(past)
    began = time.monotonic()
    while not stop.is_set():
        until = start + timedelta(seconds=(time.monotonic() - began) * speed)
        for fmt, lines in feed.tick(until).items():
            if lines:
                first = line_no.get(fmt, 1)
                submit(f"simulator-{fmt}", fmt, lines, first)
                line_no[fmt] = first + len(lines)
        stop.wait(0.25)


def _refused(f: dict[str, Any]) -> str:
    """`` refused=N (...)``: lines no detector saw (unreadable, out of time bounds), or ''."""
    parts = {"unreadable": f["rejected"], "out of time bounds": f["out_of_bounds"]}
    total = sum(parts.values())
    if not total:
        return ""
    detail = ", ".join(f"{v:,} {k}" for k, v in parts.items() if v)
    return f" refused={total:,} ({detail})"


def _watch(service: Any, title: str, duration: float | None, plain: bool) -> None:
    """Show the live summary until Ctrl-C, SIGTERM or ``duration`` seconds."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    console = Console()
    try:
        if plain or not console.is_terminal:
            while not stop.wait(5.0 if duration is None else min(5.0, duration)):
                f = service.figures()
                console.print(
                    f"{datetime.now(UTC):%H:%M:%S} events={f['events']:,} rate={f['events_per_s']:,.0f}/s "
                    f"alerts={f['alerts']:,} {dict(f['alerts_by_category'])}{_refused(f)}",
                    highlight=False,
                )
                if duration is not None and time.monotonic() - started >= duration:
                    break
        else:
            with Live(
                render(service, started, title), console=console, refresh_per_second=2
            ) as live:
                while not stop.wait(1.0):
                    live.update(render(service, started, title))
                    if duration is not None and time.monotonic() - started >= duration:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def _warn_wildcards(settings: Any) -> None:
    """Say loudly (log and stderr) when a listener is open to every interface."""
    for listener in wildcard_listeners(settings):
        log.warning("listening_on_every_interface", listener=listener)
        Console(stderr=True).print(
            f"[bold red]warning:[/] {listener} listens on every interface of this machine: "
            "anyone who can reach it can try it; bind 127.0.0.1 unless it must be reached "
            "from elsewhere, and then put it behind a firewall",
            highlight=False,
        )


def _start(service: Any) -> None:
    try:
        service.start()
    except ShopwatchError as err:
        service.stop()
        fail(str(err))
    except OSError as err:  # a port already in use, a folder that cannot be written
        service.stop()
        fail(f"could not start: {err}")


def run_cmd(
    config: Path = typer.Option(
        ..., "--config", "-c", help="YAML settings with sources: files, syslog, http."
    ),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    plain: bool = typer.Option(
        False, "--plain", help="Print a status line every 5 s instead of the live view."
    ),
) -> None:
    """Monitor real sources live: tail files, HTTP ingest, syslog; web UI on 127.0.0.1."""
    from shopwatch.pipeline.service import Service

    settings = settings_from(config)
    if not (settings.sources.files or settings.sources.syslog or settings.sources.http.enabled):
        fail(f"{config} names no source: add sources.files, sources.syslog or sources.http")
    issues = problems(settings)
    if issues:
        fail(f"{config} cannot run:\n" + "\n".join(f"  - {issue}" for issue in issues))
    _warn_wildcards(settings)
    try:
        service = Service(settings)
    except ShopwatchError as err:
        fail(str(err))
    _start(service)
    if service.web_url:
        where = "web.token" if settings.web.token else str(settings.data_dir / "web-token")
        Console(stderr=True).print(
            f"web UI: {service.web_url}/login (token: {where})", highlight=False
        )
    try:
        _watch(service, "shopwatch run", duration, plain)
    finally:
        service.stop()
    Console(stderr=True).print(
        f"stopped after {service.runner.stats.events:,} events{_refused(service.figures())}",
        highlight=False,
    )


def demo_cmd(
    data_dir: Path = typer.Option(
        Path("shopwatch-demo"), "--data-dir", help="Where the demo keeps its database."
    ),
    port: int = typer.Option(8080, "--port", help="Web UI port on 127.0.0.1 (0 picks a free one)."),
    seed: int = typer.Option(7, "--seed", help="Simulator seed."),
    speed: float = typer.Option(1.0, "--speed", help="Simulated seconds per real second."),
    customers: int = typer.Option(5000, "--customers", help="Customers of the simulated shop."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this many seconds."),
    no_web: bool = typer.Option(False, "--no-web", help="Do not serve the web UI."),
    plain: bool = typer.Option(
        False, "--plain", help="Print a status line every 5 s instead of the live view."
    ),
    config: Path | None = typer.Option(None, "--config", "-c", help="Optional YAML settings."),
) -> None:
    """Start the embedded default with the built-in shop simulator feeding it live."""
    from shopwatch.pipeline.service import Service

    settings = settings_from(config, data_dir=data_dir)
    settings.web.port = port
    # Simulated crawlers sit in real crawler ranges; asking real DNS about them proves nothing.
    settings.enrich.setdefault("crawler_dns", {"enabled": False})
    if speed > 1:  # simulated time runs ahead of the wall clock: do not reject it as forged
        settings.runtime.max_future_skew_s = None
    if no_web:
        settings.web.enabled = False
    _warn_wildcards(settings)
    try:
        service = Service(settings, with_sources=False)
    except ShopwatchError as err:
        fail(str(err))
    _start(service)
    service.add_producer(
        lambda stop: run_feed(
            service.runner.submit, stop, seed=seed, speed=speed, customers=customers
        ),
        name="shopwatch-simulator",
    )
    if service.web_url:
        Console(stderr=True).print(
            f"web UI: {service.web_url}/login?token={service.token}",
            highlight=False,
            soft_wrap=True,
        )
    try:
        _watch(service, "shopwatch demo (simulated shop)", duration, plain)
    finally:
        service.stop()
    Console(stderr=True).print(
        f"demo stopped: {service.runner.stats.events:,} events, {service.runner.engine.stats.alerts:,} alerts "
        f"(kept in {data_dir})"
    )


def register(app: typer.Typer) -> None:
    """Add this module's commands to ``app``."""
    app.command("demo")(demo_cmd)
    app.command("run")(run_cmd)
