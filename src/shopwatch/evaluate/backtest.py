"""Replaying files through the default pipeline, and matching alerts to labelled entities.

Shared by the evaluations that score alerts against entities (simulated campaigns, entity
CSVs, the real logs): one replay in event time, exactly what ``shopwatch replay`` runs,
with nothing written outside a temporary data folder; one rule for when an alert is about
an entity; one parser for the times of ground truth.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Final

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.replay import ReplayReport, replay

__all__ = [
    "SHARED_FIELDS",
    "Backtest",
    "Population",
    "Span",
    "backtest",
    "grace",
    "named",
    "parse_time",
    "ratio",
]

#: Entity fields that name shared infrastructure (a server, a service): many unrelated
#: alerts name the same host, so naming it never ties an alert to one attack or entity.
SHARED_FIELDS: Final = frozenset({"host.name", "service.name"})


@dataclass(frozen=True, slots=True)
class Backtest:
    """The alerts of one replay (in time order) and its report."""

    alerts: list[Alert]
    report: ReplayReport


def backtest(
    paths: Sequence[str | Path],
    settings: Settings | None = None,
    *,
    fmt: str = "auto",
    year: int | None = None,
    on_batch: Callable[[pl.DataFrame], None] | None = None,
) -> Backtest:
    """Replay ``paths`` through every enabled detector and collect the alerts.

    The data folder is always a throw-away one (an evaluation never writes caches or
    databases where it runs); ``settings`` chooses rules, detectors and enrichment.
    ``year`` places RFC 3164 syslog lines, which carry none (else it is inferred as
    ``shopwatch replay`` does).
    """
    files = [str(p) for p in paths]
    missing = [p for p in files if p != "-" and not Path(p).is_file()]
    if missing:
        raise ConfigError(f"no such file: {', '.join(missing)}")
    with tempfile.TemporaryDirectory(prefix="shopwatch-evaluate-") as tmp:
        base = settings if settings is not None else Settings()
        chosen = base.model_copy(update={"data_dir": Path(tmp)})
        frames: list[pl.DataFrame] = []
        engine = build_engine(chosen)
        try:
            report = replay(
                files,
                engine,
                fmt=fmt,
                year=year if year is not None else chosen.year,
                timezone=chosen.timezone,
                on_alerts=frames.append,
                on_batch=on_batch,
            )
        finally:
            engine.close()
    alerts = [Alert.from_row(r) for f in frames for r in f.iter_rows(named=True)]
    alerts.sort(key=lambda a: (a.timestamp, a.rule_id, a.id))
    return Backtest(alerts, report)


def named(alert: Alert) -> set[tuple[str, str]]:
    """The (field, value) pairs an alert is about: its entity, shared infrastructure aside.

    An alert about a group above one entity (a network, the whole shop) names the members
    it lists (``details.members``) and the accounts a campaign broke into
    (``details.compromised``): each counts as named, attacker or not.

    >>> a = Alert("a", datetime(2025, 1, 1, tzinfo=UTC), "r", "R", "scanner", "low", 10,
    ...           {"source.ip": "192.0.2.1", "host.name": "web-1"}, (), "m")
    >>> sorted(named(a))
    [('source.ip', '192.0.2.1')]
    >>> b = Alert("b", datetime(2025, 1, 1, tzinfo=UTC), "r", "R", "scanner", "low", 10,
    ...           {}, (), "m", details={"members": {"source.ip": ["192.0.2.7", "192.0.2.8"]}})
    >>> sorted(named(b))
    [('source.ip', '192.0.2.7'), ('source.ip', '192.0.2.8')]
    """
    pairs = {(k, v) for k, v in alert.entity.items() if v and k not in SHARED_FIELDS}
    for part in ("members", "compromised"):
        listed = alert.details.get(part) if isinstance(alert.details, dict) else None
        if isinstance(listed, dict):
            for k, values in listed.items():
                if k not in SHARED_FIELDS and isinstance(values, list):
                    pairs |= {(k, str(v)) for v in values if v}
    return pairs


@dataclass(frozen=True, slots=True)
class Span:
    """Entities that belong to one truth record between two instants (either may be open).

    ``values`` maps a field to its values; the field ``*`` matches a value in any field
    (a labels CSV names entities without saying which field they are).
    """

    values: dict[str, frozenset[str]]
    start: datetime | None = None
    end: datetime | None = None

    def during(self, at: datetime) -> bool:
        """True when ``at`` lies inside the span (both ends included)."""
        return (self.start is None or at >= self.start) and (self.end is None or at <= self.end)

    def covers(self, alert: Alert) -> bool:
        """True when ``alert`` is about one of the entities, inside the span."""
        if not self.during(alert.timestamp):
            return False
        anywhere = self.values.get("*", frozenset())
        return any(v in anywhere or v in self.values.get(k, ()) for k, v in named(alert))


def parse_time(value: object, where: str, *, end_of_day: bool = False) -> datetime:
    """A ground-truth instant: RFC 3339 (a missing zone is UTC), a date, or epoch seconds.

    A bare date is midnight, or the last instant of that day with ``end_of_day`` (a span
    that ends on a date includes the date).

    >>> parse_time("2025-06-03T08:00:00+02:00", "x").isoformat()
    '2025-06-03T06:00:00+00:00'
    >>> parse_time("2025-06-03", "x", end_of_day=True).isoformat()
    '2025-06-03T23:59:59.999999+00:00'
    >>> parse_time(0, "x").isoformat()
    '1970-01-01T00:00:00+00:00'
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a time")
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except (OverflowError, OSError, ValueError) as err:
            raise ConfigError(f"{where}: {value!r} is not a time in epoch seconds") from err
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: {value!r} is not a time")
    text = value.strip()
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as err:
        raise ConfigError(f"{where}: {text!r} is not an RFC 3339 time") from err
    if len(text) == 10 and end_of_day:  # a bare date
        parsed = datetime.combine(parsed.date(), time.max)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def ratio(part: int, whole: int) -> float | None:
    """``part / whole`` to four places, ``None`` when there is nothing to divide.

    >>> ratio(1, 3), ratio(0, 0)
    (0.3333, None)
    """
    return round(part / whole, 4) if whole else None


@dataclass(slots=True)
class Population:
    """Who was active in a replay: accounts with a successful shop event, source addresses."""

    customers: set[str] = field(default_factory=set)
    addresses: set[str] = field(default_factory=set)
    #: Events before this time (a simulated shop's past weeks) make nobody part of the run.
    since: datetime | None = None

    def observe(self, batch: pl.DataFrame) -> None:
        """Add the accounts and addresses of one parsed batch (``backtest``'s ``on_batch``)."""
        if self.since is not None and "@timestamp" in batch.columns:
            batch = batch.filter(pl.col("@timestamp") >= self.since)
        if {"user.name", "event.dataset", "event.outcome"} <= set(batch.columns):
            ok = batch.filter(
                pl.col("event.dataset").str.starts_with("shop.")
                & pl.col("user.name").is_not_null()
                & (pl.col("event.outcome").is_null() | pl.col("event.outcome").eq("success"))
            )
            self.customers.update(ok["user.name"].unique().to_list())
        if "source.ip" in batch.columns:
            self.addresses.update(batch["source.ip"].drop_nulls().unique().to_list())


def grace(seconds: float) -> timedelta:
    """A grace period as a ``timedelta`` (seconds may not be negative)."""
    if seconds < 0:
        raise ConfigError(f"a grace period cannot be negative ({seconds} s)")
    return timedelta(seconds=seconds)
