"""Replaying files through the default pipeline and matching its alerts to entities.

Shared by the evaluations that score alerts against labelled entities (simulated campaigns,
entity CSVs, the real logs): one replay in event time, exactly what ``shopwatch replay``
runs, with nothing written outside a temporary data folder.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.replay import ReplayReport, replay

__all__ = ["Backtest", "Window", "alert_values", "backtest", "matching"]


@dataclass(frozen=True, slots=True)
class Backtest:
    """The alerts of one replay and its report."""

    alerts: list[Alert]
    report: ReplayReport


def backtest(
    paths: Sequence[str | Path],
    settings: Settings | None = None,
    *,
    fmt: str = "auto",
    on_batch: Callable[[pl.DataFrame], None] | None = None,
) -> Backtest:
    """Replay ``paths`` through every enabled detector and collect the alerts.

    Without ``settings`` the defaults are used with a throw-away data folder, so an
    evaluation never writes caches or databases where it is run.
    """
    files = [str(p) for p in paths]
    missing = [p for p in files if p != "-" and not Path(p).is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="shopwatch-evaluate-") as tmp:
        chosen = settings if settings is not None else Settings(data_dir=Path(tmp))
        frames: list[pl.DataFrame] = []
        engine = build_engine(chosen)
        try:
            report = replay(files, engine, fmt=fmt, on_alerts=frames.append, on_batch=on_batch)
        finally:
            engine.close()
    alerts = [Alert.from_row(r) for f in frames for r in f.iter_rows(named=True)]
    alerts.sort(key=lambda a: (a.timestamp, a.rule_id, a.id))
    return Backtest(alerts, report)


def alert_values(alert: Alert) -> set[tuple[str, str]]:
    """The (field, value) pairs an alert names in its entity.

    >>> from datetime import UTC
    >>> a = Alert("a", datetime(2025, 1, 1, tzinfo=UTC), "r", "R", "scanner", "low", 10,
    ...           {"source.ip": "192.0.2.1"}, (), "m")
    >>> sorted(alert_values(a))
    [('source.ip', '192.0.2.1')]
    """
    return {(k, v) for k, v in alert.entity.items() if v}


@dataclass(frozen=True, slots=True)
class Window:
    """Entities (field → values) that belong to one truth record between two instants."""

    values: dict[str, frozenset[str]]
    start: datetime | None = None
    end: datetime | None = None

    def covers(self, alert: Alert) -> bool:
        """True when ``alert`` names one of the entities inside the window."""
        if self.start is not None and alert.timestamp < self.start:
            return False
        if self.end is not None and alert.timestamp > self.end:
            return False
        return any(v in self.values.get(k, ()) for k, v in alert_values(alert))


def matching(alerts: Iterable[Alert], window: Window) -> list[Alert]:
    """The alerts ``window`` covers, in time order."""
    return [a for a in alerts if window.covers(a)]
