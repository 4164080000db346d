"""Enrichment and detection over event-time batches: parse → enrich → detect → sinks.

:class:`Engine` runs enrichers and detectors over event-time batches and owns the keyed
state, the watermarks and the runtime counters. Replay and live monitoring share it: replay
feeds it the merged, time-ordered batches of files (:func:`merge_by_time`), live mode feeds
it the micro-batches of :class:`shopwatch.pipeline.live.LiveRunner`.

Event time is data an attacker controls, so no single event may move the engine's clock:

- **Bounds (live, network sources).** Given the arrival clock (``process(..., now=...)``),
  an event from a network listener (syslog, HTTP ingest: the sender sets its time) later
  than ``now + max_future_skew_s`` or earlier than ``now - max_past_age_s`` is rejected
  before enrichment and counted by source and reason (``future_timestamp``,
  ``past_timestamp``) in ``stats.out_of_bounds``, ``stats.rejected`` and
  ``shopwatch_pipeline_events_out_of_bounds_total``. Rejected rather than clamped: a
  clamped event would count in a window at a time it never had. Tailed files (written by
  the shop's own servers, and often a backfill of last year's logs) and replay are not
  bounded; there the clocks below are what protects the state.
- **Per-source clocks.** Each row names its source (the ``_source`` helper column, or the
  ``source`` argument; ``-`` when neither is given, as in replay). A source's clock is the
  (``watermark_outliers`` + 1)-th newest event time it has shown, so up to
  ``watermark_outliers`` events dated 9999 cannot move it, and an event dated year 1
  never lowers it. Until a source has shown that many events it is *warming up* and its
  clock is the oldest time it has shown.
- **The engine's clock** is the lowest clock of the active sources: one source running
  ahead never evicts the state that a source behind it (or one still warming up) needs;
  a source can only hold the clock back, which costs memory (held by the budget below),
  never detections. Live, a source is active until it has been silent for
  ``source_idle_s`` of arrival time; in replay every source seen stays active, so the
  result depends on the events only. Detectors trim their windows against this clock
  (:attr:`KeyedState.clock`), and age eviction runs ``state_max_age_s`` behind the
  watermark (the clock less ``allowed_lateness_s``). Snapshots carry every source's clock.
- **Memory.** All detector state together is held under ``state_max_bytes``: past it the
  least recently seen keys are shed (:func:`shed_to_budget`), counted per detector in
  ``stats.shed_keys`` / ``stats.shed_rows`` and ``shopwatch_detect_state_shed_*_total``.

Before enrichment, access-log logins are read per shop platform
(:class:`shopwatch.enrich.logins.LoginReader`). A login whose outcome only the client's
next request tells is held back until that request (or ``within`` of event time without
one) and run with a later batch; :meth:`Engine.flush` runs what is still held at the end
of a replay, and snapshots carry it.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import structlog
from prometheus_client import Counter as Counter_
from prometheus_client import Gauge

from shopwatch.config import RuntimeSettings
from shopwatch.contract import empty_alerts
from shopwatch.detect.campaign import CampaignFolder
from shopwatch.detect.conditions import derived_column
from shopwatch.detect.exemptions import (
    EXEMPT_STATE,
    Exemption,
    ExemptionRules,
    FieldExemptions,
    exemptable,
)
from shopwatch.detect.gate import candidates, gate_fields
from shopwatch.detect.health import DetectorHealth
from shopwatch.detect.profiles import PROFILE_FIELDS, PROFILE_STATE, Profiler, ProfileSettings
from shopwatch.detect.registry import Detector, horizon_of, memory_of, with_origin
from shopwatch.detect.state import (
    EARLIEST,
    LATEST,
    KeyedState,
    shed_to_budget,
    shift_time,
)
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.logins import LoginReader
from shopwatch.parse.base import Parsed
from shopwatch.pipeline.merge import one_alert_per_request
from shopwatch.pipeline.series import SERIES_STATE, ProbeSeries, SeriesRules

__all__ = ["DEFAULT_SOURCE", "SOURCE", "Engine", "EngineStats", "SourceClock", "merge_by_time"]

log = structlog.get_logger("shopwatch.pipeline")

EVENTS = Counter_("shopwatch_pipeline_events_total", "Events run through the detectors.")
LATE = Counter_(
    "shopwatch_pipeline_late_events_total", "Events older than the watermark when they arrived."
)
OUT_OF_BOUNDS = Counter_(
    "shopwatch_pipeline_events_out_of_bounds_total",
    "Events rejected because their time is too far from their arrival, by source and reason.",
    ["source", "reason"],
)
ALERTS = Counter_("shopwatch_detect_alerts_total", "Alerts raised, by category.", ["category"])
FAILURES = Counter_(
    "shopwatch_detect_errors_total", "Detector calls that raised, by detector.", ["detector"]
)
STATE = Gauge("shopwatch_detect_state_bytes", "Memory held by detector state.")
STATE_ROWS = Gauge("shopwatch_detect_state_rows", "Rows held by detector state.")
SHED_KEYS = Counter_(
    "shopwatch_detect_state_shed_keys_total",
    "Keys shed to hold detector state under its byte budget, by detector.",
    ["detector"],
)
SHED_ROWS = Counter_(
    "shopwatch_detect_state_shed_rows_total",
    "State rows shed to hold detector state under its byte budget, by detector.",
    ["detector"],
)

AlertSink = Callable[[pl.DataFrame], None]

#: Helper column naming each row's source (dropped before enrichment).
SOURCE = "_source"
#: The source of rows that name none (replay's merged files, direct engine use).
DEFAULT_SOURCE = "-"
FUTURE = "future_timestamp"
PAST = "past_timestamp"

#: Age eviction runs again once the watermark moved this far (or went back).
_EVICT_EVERY = timedelta(seconds=10)
_SNAPSHOT_VERSION = 2
#: Sources whose senders set the event time themselves (network listeners): bounded
#: against arrival. A tailed file is written by the shop's own servers and may be a
#: backfill of old logs; it is held by its own clock only.
BOUNDED_SOURCES = frozenset({"syslog-udp", "syslog-tcp", "http"})
_KNOWN_SOURCES = frozenset({*BOUNDED_SOURCES, DEFAULT_SOURCE})


def zone_hint(event_time: datetime, now: datetime) -> str | None:
    """A hint when an event runs ahead of its arrival by about a whole number of hours.

    Zone-less timestamps (RFC 3164 syslog) read as UTC from a sender that logs local time
    east of UTC arrive hours "in the future"; the cure is the ``timezone`` setting.

    >>> from datetime import UTC
    >>> t = datetime(2026, 12, 1, 8, 47, tzinfo=UTC)
    >>> zone_hint(t + timedelta(hours=2, seconds=-20), t)
    'about 2 h ahead: a sender logging local time without a zone? set timezone'
    >>> zone_hint(t + timedelta(hours=2, minutes=20), t) is None
    True
    """
    ahead = (event_time - now).total_seconds()
    hours = round(ahead / 3600)
    if 1 <= hours <= 14 and abs(ahead - hours * 3600) <= 120:
        return f"about {hours} h ahead: a sender logging local time without a zone? set timezone"
    return None


def source_label(name: str) -> str:
    """The metric label of a source: its kind, never a file name (labels are a small set).

    >>> source_label("syslog-udp"), source_label("access.log"), source_label("simulator-ecs")
    ('syslog-udp', 'file', 'simulator')
    """
    if name in _KNOWN_SOURCES:
        return name
    if name.startswith("simulator"):
        return "simulator"
    return "file"


@dataclass
class SourceClock:
    """One source's event-time clock: its newest event times, robust to a few outliers."""

    newest: list[datetime] = field(default_factory=list)  # oldest first, at most outliers + 1
    events: int = 0
    max_event_time: datetime | None = None
    last_arrival: datetime | None = None  # live only; not snapshotted (a restart is a gap)

    @property
    def clock(self) -> datetime | None:
        """The (outliers + 1)-th newest time seen; while warming up, the oldest seen."""
        return self.newest[0] if self.newest else None

    def is_warm(self, outliers: int) -> bool:
        """Whether more than ``outliers`` events were seen (the clock is then robust)."""
        return self.events > outliers

    def advance(self, times: list[datetime], outliers: int) -> None:
        """Take in the newest event times of a batch (at most ``outliers + 1`` needed)."""
        self.newest = sorted([*self.newest, *times])[-(outliers + 1) :]

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for snapshots and stats."""
        return {
            "newest": [t.isoformat() for t in self.newest],
            "events": self.events,
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "clock": self.clock.isoformat() if self.clock else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceClock:
        """Inverse of :meth:`as_dict`."""
        latest = data.get("max_event_time")
        return cls(
            newest=sorted(datetime.fromisoformat(t) for t in data.get("newest", [])),
            events=int(data.get("events", 0)),
            max_event_time=datetime.fromisoformat(latest) if latest else None,
        )


@dataclass
class EngineStats:
    """Counters of one engine since it started (restored across restarts)."""

    events: int = 0
    batches: int = 0
    late_events: int = 0
    alerts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    out_of_bounds: dict[str, Counter[str]] = field(default_factory=dict)  # source -> reason
    alerts_by_category: Counter[str] = field(default_factory=Counter)
    detector_errors: Counter[str] = field(default_factory=Counter)
    detect_seconds: dict[str, float] = field(default_factory=dict)
    max_event_time: datetime | None = None
    state_bytes: int = 0
    state_rows: int = 0
    shed_keys: Counter[str] = field(default_factory=Counter)
    shed_rows: Counter[str] = field(default_factory=Counter)
    #: Requests a rule did not see because only exempt fields matched it (per rule).
    exempted: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "events": self.events,
            "batches": self.batches,
            "late_events": self.late_events,
            "alerts": self.alerts,
            "rejected": dict(self.rejected),
            "out_of_bounds": {s: dict(c) for s, c in sorted(self.out_of_bounds.items())},
            "alerts_by_category": dict(self.alerts_by_category),
            "detector_errors": dict(self.detector_errors),
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
            "state_bytes": self.state_bytes,
            "state_rows": self.state_rows,
            "shed_keys": dict(self.shed_keys),
            "shed_rows": dict(self.shed_rows),
            "exempted": dict(self.exempted),
        }


class Engine:
    """Enrichment and detection over event-time batches, with bounded keyed state."""

    def __init__(
        self,
        detectors: Sequence[Detector],
        enrichers: Sequence[Enricher] = (),
        *,
        runtime: RuntimeSettings | None = None,
        sinks: Iterable[AlertSink] = (),
        logins: LoginReader | None = None,
        exemptions: ExemptionRules | None = None,
        series: SeriesRules | None = None,
    ) -> None:
        self.runtime = runtime or RuntimeSettings()
        self.detectors = list(detectors)
        self.enrichers = list(enrichers)
        self.logins = logins
        self.sinks = list(sinks)
        self.lateness = timedelta(seconds=self.runtime.allowed_lateness_s)
        floor = timedelta(seconds=self.runtime.state_max_age_s)
        # A detector's state lives at least as long as the history its rule reads.
        self.folders = {d.id: CampaignFolder(d) for d in self.detectors}
        self.states: dict[str, KeyedState] = {
            d.id: KeyedState(
                d.keys,
                max_keys=self.runtime.state_max_keys,
                max_age=max(
                    floor,
                    horizon_of(d) + self.lateness,
                    memory_of(d),
                    self.folders[d.id].lifetime,
                ),
            )
            for d in self.detectors
        }
        # Account profiles, kept only when a rule reads what they say.
        self.profiler: Profiler | None = None
        if any(set(PROFILE_FIELDS) & d.needs for d in self.detectors):
            self.profiler = Profiler(
                ProfileSettings(
                    max_age=timedelta(seconds=self.runtime.profile_max_age_s),
                    settle=timedelta(seconds=self.runtime.profile_settle_s),
                    recent=timedelta(seconds=self.runtime.profile_recent_s),
                    max_values=self.runtime.profile_max_values,
                    max_accounts=self.runtime.state_max_keys,
                )
            )
            self.states[PROFILE_STATE] = self.profiler.new_state()
        self.stats = EngineStats()
        # Per-field exemptions of web signatures (detect.exemptions), with their own state.
        self._exemptable = frozenset(d.id for d in self.detectors if exemptable(d))
        self.exemptions: FieldExemptions | None = None
        if exemptions is not None and self._exemptable:
            self.exemptions = FieldExemptions(self._fixed_by_id(exemptions))
            self.exemptions.exempted = self.stats.exempted
            self.states[EXEMPT_STATE] = self.exemptions.new_state()
        # Signature alerts: one per request (pipeline.merge), one series per source.
        self._signatures = frozenset(
            d.id for d in self.detectors if getattr(d, "single_event", False)
        )
        self.series: ProbeSeries | None = None
        if series is not None and self._signatures:
            self.series = ProbeSeries(self._signatures, series)
            self.states[SERIES_STATE] = self.series.new_state(self.runtime.state_max_keys)
        self.health = DetectorHealth([d.id for d in self.detectors])
        self.sources: dict[str, SourceClock] = {}
        self.clock: datetime | None = None
        # Modified fields computed once a batch for every row: those the ungated detectors
        # read and those the gates look in. A gated detector derives its own on its few rows.
        gated = [d for d in self.detectors if getattr(d, "gate", None)]
        self._derived = sorted(
            {f for d in self.detectors if d not in gated for f in getattr(d, "derived", ())}
            | {f for d in gated for f in gate_fields(d.gate)}  # type: ignore[attr-defined]
        )
        self._last_evict: datetime | None = None
        self._ordered = [d for d in self.detectors if not getattr(d, "sees_alerts", False)] + [
            d for d in self.detectors if getattr(d, "sees_alerts", False)
        ]

    @property
    def watermark(self) -> datetime | None:
        """Event time up to which input is considered complete: the clock less lateness."""
        if self.clock is None:
            return None
        return shift_time(self.clock, -self.lateness)

    def source_watermarks(self) -> dict[str, datetime | None]:
        """Each source's own watermark (None while it warms up)."""
        outliers = self.runtime.watermark_outliers
        return {
            name: shift_time(c.clock, -self.lateness)
            if c.clock is not None and c.is_warm(outliers)
            else None
            for name, c in sorted(self.sources.items())
        }

    def record_rejects(self, rejects: pl.DataFrame) -> None:
        """Count rejected lines by reason (they never reach the detectors)."""
        if rejects.height:
            for reason, n in rejects.group_by("reason").len().iter_rows():
                self.stats.rejected[str(reason)] += int(n)

    def process(
        self, batch: pl.DataFrame, *, source: str | None = None, now: datetime | None = None
    ) -> pl.DataFrame:
        """Run one batch through enrichment and every detector; returns its alerts.

        Rows name their source in the ``_source`` column, else ``source`` names them all.
        ``now`` is the arrival clock (live only): events too far from it are rejected and
        counted, never run (see the module docstring).
        """
        if batch.height == 0:
            return empty_alerts()
        batch = batch.filter(pl.col("@timestamp").is_not_null())
        if SOURCE not in batch.columns:
            batch = batch.with_columns(pl.lit(source or DEFAULT_SOURCE).alias(SOURCE))
        if now is not None:
            batch = self._bound(batch, now)
        if batch.height == 0:
            return empty_alerts()
        if not batch["@timestamp"].is_sorted():
            batch = batch.sort("@timestamp", maintain_order=True)
        self._count_late(batch)
        self._advance_clocks(batch, now)
        if self.logins is not None:  # logins read per platform; some held for a next request
            clocks = {n: c.clock for n, c in self.sources.items() if c.clock is not None}
            batch = self.logins.read(batch, self.clock, clocks=clocks, source=SOURCE)
            if batch.height == 0:
                return empty_alerts()
        batch = batch.drop(SOURCE)
        for enricher in self.enrichers:
            batch = enricher.enrich(batch)
        derived = [f for f in self._derived if f.split("|", 1)[0] in batch.columns]
        if derived:  # modified fields (url.original|decoded) computed once for every detector
            batch = batch.with_columns([derived_column(f) for f in derived])
        if self.profiler is not None:
            started = time.perf_counter()
            batch = self.profiler.annotate(batch, self.states[PROFILE_STATE])
            self.stats.detect_seconds[PROFILE_STATE] = (
                self.stats.detect_seconds.get(PROFILE_STATE, 0.0) + time.perf_counter() - started
            )
        outputs: list[pl.DataFrame] = []
        if self.exemptions is not None:  # read again: a restore, eviction or shedding changed it
            self.exemptions.forget_cache()
        # Signature rules whose matches must contain a literal see only the rows of one
        # multi-pattern pass over the batch (detect.gate): many rules cost about one.
        gates = {d.id: g for d in self.detectors if (g := getattr(d, "gate", None))}
        try:
            gated = candidates(batch, gates) if gates else {}
        except Exception as err:  # a failed pass must not cost the batch: run every rule on it
            gated = {}
            log.warning("gate_failed", error=str(err), rules=len(gates), rows=batch.height)
        # Rules that learn only from what raised no alert run last and see the others' alerts.
        for detector in self._ordered:
            started = time.perf_counter()
            if outputs and getattr(detector, "sees_alerts", False):
                self._hand_alerts(detector, outputs)
            try:
                state = self.states[detector.id]
                given = gated.get(detector.id, batch)
                if self.exemptions is not None and detector.id in self._exemptable:
                    given = self._screen(detector, given)
                found = self.folders[detector.id].fold(
                    detector.detect(given, state), state, self.clock, batch
                )
            except Exception as err:  # a broken detector must not stop the others
                self.stats.detector_errors[detector.id] += 1
                FAILURES.labels(detector.id).inc()
                if self.health.failed(detector.id, err):  # once per error class, not per batch
                    record = self.health.records[detector.id]
                    log.error(
                        "detector_failed",
                        detector=detector.id,
                        error_class=record.last_error_class,
                        error=record.last_error,
                        errors=record.errors,
                        rows=batch.height,
                        exc_info=True,
                    )
                continue
            else:
                streak = self.health.succeeded(detector.id)
                if streak:
                    log.info("detector_recovered", detector=detector.id, failed_batches=streak)
            finally:
                spent = time.perf_counter() - started
                self.stats.detect_seconds[detector.id] = (
                    self.stats.detect_seconds.get(detector.id, 0.0) + spent
                )
            if found.height:
                if detector.spec.origin:
                    found = with_origin(found, detector.spec.origin)
                outputs.append(found)
        if self.exemptions is not None:
            try:
                self.exemptions.commit(self.states[EXEMPT_STATE])
            except Exception as err:  # learning must never cost the batch its alerts
                log.warning("exemptions_failed", stage="learn", error=str(err))
        batch_max = batch["@timestamp"].max()
        assert isinstance(batch_max, datetime)
        if self.stats.max_event_time is None or batch_max > self.stats.max_event_time:
            self.stats.max_event_time = batch_max
        self.stats.events += batch.height
        self.stats.batches += 1
        EVENTS.inc(batch.height)
        alerts = empty_alerts()
        if outputs:
            alerts = pl.concat(outputs, how="vertical").sort(["@timestamp", "rule.id", "alert.id"])
            alerts = one_alert_per_request(alerts, self._signatures)
            alerts = raise_risk_by_reputation(alerts, batch)
        if self.series is not None and alerts.height:
            try:
                alerts = self.series.fold(alerts, self.states[SERIES_STATE])
            except Exception as err:  # a series that cannot be read costs no alert
                log.warning("series_failed", error=str(err), alerts=alerts.height)
        self._maybe_evict()
        self._hold_budget()
        if alerts.height == 0:
            return empty_alerts()
        return self._raise(alerts)

    def _hand_alerts(self, detector: Detector, outputs: list[pl.DataFrame]) -> None:
        """Give a rule that learns only from what raised no alert the alerts so far."""
        try:
            detector.take_alerts(  # type: ignore[attr-defined]
                pl.concat(outputs, how="vertical_relaxed"), self.states[detector.id]
            )
        except Exception as err:  # its detection goes on, with what it was told before
            log.warning("alerts_not_handed", detector=detector.id, error=str(err))

    def _fixed_by_id(self, rules: ExemptionRules) -> ExemptionRules:
        """``rules`` with a Sigma UUID (in written exemptions, ``never`` and ``learn_rules``)
        read as its rule's id."""
        by_uuid = {
            str(d.spec.origin["id"]).lower(): d.id
            for d in self.detectors
            if d.spec.origin and d.spec.origin.get("id")
        }

        def ids(given: frozenset[str], where: str) -> frozenset[str]:
            out = frozenset(by_uuid.get(r.lower(), r) for r in given)
            for unknown in sorted(out - self._exemptable):
                log.warning("exemption_rule_unknown", rule=unknown, where=where)
            return out

        def each(items: tuple[Exemption, ...], where: str) -> tuple[Exemption, ...]:
            return tuple(
                item if item.rules is None else replace(item, rules=ids(item.rules, where))
                for item in items
            )

        return replace(
            rules,
            fixed=each(rules.fixed, "fixed"),
            never=each(rules.never, "never"),
            learn_rules=(
                ids(rules.learn_rules, "learn_rules") if rules.learn_rules is not None else None
            ),
        )

    def _screen(self, detector: Detector, given: pl.DataFrame) -> pl.DataFrame:
        """``given`` less the requests only exempt fields made match (all of it on failure)."""
        assert self.exemptions is not None
        try:
            return self.exemptions.screen(detector, given, self.states[EXEMPT_STATE])
        except Exception as err:  # an exemption that cannot be judged is no exemption
            log.warning("exemptions_failed", stage="screen", detector=detector.id, error=str(err))
            return given

    def _raise(self, alerts: pl.DataFrame) -> pl.DataFrame:
        """Count ``alerts`` and hand them to the sinks; returns them."""
        self.stats.alerts += alerts.height
        for category, n in alerts.group_by("rule.category").len().iter_rows():
            self.stats.alerts_by_category[str(category)] += int(n)
            ALERTS.labels(str(category)).inc(int(n))
        for sink in self.sinks:
            sink(alerts)
        return alerts

    # -- event time ------------------------------------------------------------------

    def _bound(self, batch: pl.DataFrame, now: datetime) -> pl.DataFrame:
        """Reject (and count) the rows too far from the arrival clock ``now``."""
        ts = pl.col("@timestamp")
        if not batch[SOURCE].is_in(list(BOUNDED_SOURCES)).any():
            return batch  # files and the simulator: the shop's own clocks (module docstring)
        skew, past = self.runtime.max_future_skew_s, self.runtime.max_past_age_s
        upper = shift_time(now, timedelta(seconds=skew)) if skew is not None else LATEST
        lower = shift_time(now, -timedelta(seconds=past)) if past is not None else EARLIEST
        reason = (
            pl.when(~pl.col(SOURCE).is_in(list(BOUNDED_SOURCES)))
            .then(pl.lit(None, pl.String))
            .when(ts > upper)
            .then(pl.lit(FUTURE))
            .when(ts < lower)
            .then(pl.lit(PAST))
            .otherwise(pl.lit(None, pl.String))
        )
        marked = batch.with_columns(reason.alias("_oob"))
        bad = marked.filter(pl.col("_oob").is_not_null())
        if bad.height == 0:
            return batch
        has_id = "event.id" in bad.columns
        summary = (
            bad.group_by(SOURCE, "_oob")
            .agg(
                pl.len().alias("n"),
                pl.col("@timestamp").first().alias("ts"),
                (pl.col("event.id") if has_id else pl.lit(None, pl.String)).first().alias("id"),
            )
            .sort(SOURCE, "_oob")
        )
        for name, why, n, first_ts, first_id in summary.iter_rows():
            self.stats.out_of_bounds.setdefault(str(name), Counter())[str(why)] += int(n)
            self.stats.rejected[str(why)] += int(n)
            OUT_OF_BOUNDS.labels(source_label(str(name)), str(why)).inc(int(n))
            log.warning(
                "events_out_of_bounds",
                source=name,
                reason=why,
                events=int(n),
                example_id=first_id,
                example_time=first_ts.isoformat() if first_ts else None,
                arrival=now.isoformat(),
                hint=zone_hint(first_ts, now) if why == FUTURE and first_ts else None,
            )
        return marked.filter(pl.col("_oob").is_null()).drop("_oob")

    def _count_late(self, batch: pl.DataFrame) -> None:
        """Count the rows older than their own source's watermark (they still run)."""
        marks = {n: w for n, w in self.source_watermarks().items() if w is not None}
        if not marks:
            return
        frame = pl.DataFrame(
            {SOURCE: list(marks), "_wm": list(marks.values())},
            schema={SOURCE: pl.String, "_wm": batch.schema["@timestamp"]},
        )
        late = int(
            batch.select(SOURCE, "@timestamp")
            .join(frame, on=SOURCE, how="inner")
            .select((pl.col("@timestamp") < pl.col("_wm")).sum())
            .item()
        )
        if late:
            self.stats.late_events += late
            LATE.inc(late)

    def _advance_clocks(self, batch: pl.DataFrame, now: datetime | None) -> None:
        """Move each source's clock by the batch, then the engine's clock (module docstring)."""
        outliers = self.runtime.watermark_outliers
        per_source = (
            batch.group_by(SOURCE)
            .agg(
                pl.col("@timestamp").top_k(outliers + 1).alias("top"),
                pl.len().alias("n"),
                pl.col("@timestamp").max().alias("max"),
            )
            .sort(SOURCE)
        )
        for name, top, n, newest in per_source.iter_rows():
            clock = self.sources.setdefault(str(name), SourceClock())
            clock.advance(list(top), outliers)
            clock.events += int(n)
            if clock.max_event_time is None or newest > clock.max_event_time:
                clock.max_event_time = newest
            if now is not None:
                clock.last_arrival = now
        self.clock = self._engine_clock(now)
        for state in self.states.values():
            state.clock = self.clock

    def _engine_clock(self, now: datetime | None) -> datetime | None:
        idle = timedelta(seconds=self.runtime.source_idle_s)
        active = [
            c
            for c in self.sources.values()
            if c.clock is not None
            and (now is None or (c.last_arrival is not None and now - c.last_arrival <= idle))
        ]
        candidates = [c.clock for c in active if c.clock is not None]
        return min(candidates) if candidates else self.clock

    # -- bounds ----------------------------------------------------------------------

    def _maybe_evict(self) -> None:
        watermark = self.watermark
        if watermark is None:
            return
        last = self._last_evict
        if last is not None and last <= watermark < shift_time(last, _EVICT_EVERY):
            return
        self._last_evict = watermark
        for state in self.states.values():
            state.evict(watermark)

    def shed_state(self, max_bytes: int) -> int:
        """Shed the least recently seen keys until all state fits ``max_bytes``; rows shed.

        What the memory ceiling calls when the process stays over its mark with nothing
        queued; counted like the budget's own sheds.
        """
        before = sum(self.stats.shed_rows.values())
        self._hold_budget(max_bytes)
        return sum(self.stats.shed_rows.values()) - before

    def _hold_budget(self, budget: int | None = None) -> None:
        """Shed the least recently seen keys when all state passes ``state_max_bytes``."""
        budget = self.runtime.state_max_bytes if budget is None else budget
        shed = shed_to_budget(self.states, budget)
        for det_id, (keys, rows) in shed.items():
            self.stats.shed_keys[det_id] += keys
            self.stats.shed_rows[det_id] += rows
            SHED_KEYS.labels(det_id).inc(keys)
            SHED_ROWS.labels(det_id).inc(rows)
        if shed:
            log.warning(
                "state_shed",
                budget_bytes=budget,
                keys=sum(k for k, _ in shed.values()),
                rows=sum(r for _, r in shed.values()),
                detectors=sorted(shed),
            )
        self.stats.state_bytes = self.state_bytes
        self.stats.state_rows = sum(s.rows for s in self.states.values())
        STATE.set(self.stats.state_bytes)
        STATE_ROWS.set(self.stats.state_rows)

    def flush(self) -> pl.DataFrame:
        """The end of a replay: what still waits is run and raised; their alerts.

        Logins held for a next request are released with their endpoint's ``unanswered``
        outcome, and campaign updates waiting for their hold are raised. Live monitoring
        does not flush: both go on waiting, in snapshots too, for events to come.
        """
        held = (
            self.process(self.logins.flush())
            if self.logins is not None and self.logins.held
            else empty_alerts()
        )
        # Alerts a detector holds for what comes next (a form rule waiting to see whether
        # the client opens a page), then campaign updates still waiting: the input has ended.
        waiting: list[pl.DataFrame] = []
        for detector in self._ordered:
            state, folder = self.states[detector.id], self.folders[detector.id]
            if waiting and getattr(detector, "sees_alerts", False):
                self._hand_alerts(detector, waiting)
            release = getattr(detector, "flush", None)
            if release is not None:
                before = getattr(detector, "undecided", 0)
                found = release(state)
                if getattr(detector, "undecided", 0) > before:
                    log.info(
                        "held_alerts_undecided",
                        detector=detector.id,
                        dropped=getattr(detector, "undecided", 0) - before,
                        reason="the input ended before their hold",
                    )
                if found.height:
                    folded = folder.fold(found, state, None)
                    if folded.height:
                        waiting.append(folded)
            if (found := folder.flush(state)).height:
                waiting.append(found)
        if not waiting:
            return held
        updates = self._raise(pl.concat(waiting).sort(["@timestamp", "rule.id", "alert.id"]))
        return pl.concat([held, updates], how="vertical")

    def warm_up(self) -> None:
        """Load the enrichers' tables now (geo ranges take a second), not on the first batch."""
        from shopwatch.contract import conform

        probe = conform(
            pl.DataFrame({"source.ip": ["192.0.2.1"], "user_agent.original": ["curl/8.5.0"]})
        )
        for enricher in self.enrichers:
            enricher.enrich(probe)

    def close(self) -> None:
        """Release what enrichers hold (feed refresh threads, resolver pools)."""
        for enricher in self.enrichers:
            closer = getattr(enricher, "close", None)
            if callable(closer):
                closer()

    @property
    def state_bytes(self) -> int:
        """Estimated memory of all detector state."""
        return sum(s.nbytes for s in self.states.values())

    # -- snapshot / restore ----------------------------------------------------------

    def snapshot(self, extra: dict[str, Any] | None = None) -> bytes:
        """All detector state, the source clocks and counters as one zip blob."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            meta = {
                "version": _SNAPSHOT_VERSION,
                "stats": self.stats.as_dict(),
                "sources": {n: c.as_dict() for n, c in sorted(self.sources.items())},
                "clock": self.clock.isoformat() if self.clock else None,
                "detectors": sorted(self.states),
                "extra": extra or {},
            }
            archive.writestr("meta.json", json.dumps(meta))
            for det_id, state in self.states.items():
                for name, blob in state.snapshot().items():
                    archive.writestr(f"state/{det_id}/{name}", blob)
            if self.logins is not None:
                for name, blob in self.logins.snapshot().items():
                    archive.writestr(f"logins/{name}", blob)
        return buf.getvalue()

    def restore(self, blob: bytes) -> dict[str, Any]:
        """Load a :meth:`snapshot`; returns its ``extra``. Unknown detectors are ignored."""
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta = json.loads(archive.read("meta.json"))
            per_detector: dict[str, dict[str, bytes]] = {}
            held: dict[str, bytes] = {}
            for name in archive.namelist():
                if name.startswith("state/"):
                    _, det_id, table = name.split("/", 2)
                    per_detector.setdefault(det_id, {})[table] = archive.read(name)
                elif name.startswith("logins/"):
                    held[name.split("/", 1)[1]] = archive.read(name)
        if self.logins is not None:
            self.logins.restore(held)
        for det_id, tables in per_detector.items():
            if det_id in self.states:
                self.states[det_id].restore(tables)
        saved = meta.get("stats", {})
        self.stats.events = int(saved.get("events", 0))
        self.stats.alerts = int(saved.get("alerts", 0))
        self.stats.late_events = int(saved.get("late_events", 0))
        self.stats.rejected.update(saved.get("rejected", {}))
        for name, reasons in saved.get("out_of_bounds", {}).items():
            self.stats.out_of_bounds.setdefault(name, Counter()).update(reasons)
        self.stats.alerts_by_category.update(saved.get("alerts_by_category", {}))
        self.stats.shed_keys.update(saved.get("shed_keys", {}))
        self.stats.shed_rows.update(saved.get("shed_rows", {}))
        self.stats.exempted.update(saved.get("exempted", {}))
        if saved.get("max_event_time"):
            self.stats.max_event_time = datetime.fromisoformat(saved["max_event_time"])
        # Version 1 kept one global maximum, which one event could poison: it is not
        # carried over; the source clocks start again from the events that follow.
        self.sources = {
            name: SourceClock.from_dict(data) for name, data in meta.get("sources", {}).items()
        }
        self.clock = datetime.fromisoformat(meta["clock"]) if meta.get("clock") else None
        for state in self.states.values():
            state.clock = self.clock
        self.stats.state_bytes = self.state_bytes
        self.stats.state_rows = sum(s.rows for s in self.states.values())
        extra: dict[str, Any] = meta.get("extra", {})
        return extra


#: How much of a source's reputation (0-100, from threat intel) is added to an alert's risk.
REPUTATION_WEIGHT = 0.25


def raise_risk_by_reputation(alerts: pl.DataFrame, batch: pl.DataFrame) -> pl.DataFrame:
    """Alerts about an address the feeds know as bad get a higher risk score.

    ``risk_score += REPUTATION_WEIGHT * source.reputation`` (capped at 100) and
    ``details.source_reputation`` records it; ``threat_intel`` alerts already carry the
    feed's confidence and are left alone. An address has one reputation per feed state,
    so the result does not depend on how events were cut into batches.
    """
    if "source.reputation" not in batch.columns or alerts.height == 0:
        return alerts
    known = (
        batch.filter(pl.col("source.reputation").is_not_null() & pl.col("source.ip").is_not_null())
        .group_by("source.ip")
        .agg(pl.col("source.reputation").max().alias("_rep"))
    )
    if known.height == 0:
        return alerts
    joined = alerts.with_columns(pl.col("entity").struct.field("source.ip").alias("_ip")).join(
        known.rename({"source.ip": "_ip"}), on="_ip", how="left"
    )
    hit = pl.col("_rep").is_not_null() & (pl.col("rule.category") != "threat_intel")
    boosted = (
        pl.col("risk_score") + (pl.col("_rep") * REPUTATION_WEIGHT).round(0).cast(pl.Int64)
    ).clip(0, 100)
    details = pl.col("details").fill_null("{}").str.strip_suffix("}")
    joiner = (
        pl.when(details.str.strip_chars().str.ends_with("{"))
        .then(pl.lit(""))
        .otherwise(pl.lit(", "))
    )
    return joined.with_columns(
        pl.when(hit).then(boosted).otherwise(pl.col("risk_score")).alias("risk_score"),
        pl.when(hit)
        .then(
            pl.concat_str(
                [
                    details,
                    joiner,
                    pl.lit('"source_reputation": '),
                    pl.col("_rep").cast(pl.String),
                    pl.lit("}"),
                ]
            )
        )
        .otherwise(pl.col("details"))
        .alias("details"),
    ).select(alerts.columns)


def merge_by_time(
    streams: Sequence[Iterator[Parsed]],
    on_rejects: Callable[[pl.DataFrame], None],
    *,
    outliers: int = 8,
) -> Iterator[pl.DataFrame]:
    """Merge per-file chunk streams into batches in event-time order.

    Each stream is assumed roughly ordered in time (as a log file is). A batch releases
    every buffered event up to the smallest horizon among the streams not yet exhausted,
    so no stream is ever behind another by more than one chunk. A stream's horizon is the
    ``outliers + 1``-th latest time it has buffered, and it is read on while it holds no
    more than ``outliers`` events: a few lines dated far in the future (a forged or broken
    timestamp) wait in its buffer, released at the end, instead of holding back every
    later line of the file until the other files are done. Ties keep the stream order,
    then the line order: deterministic, run after run.
    """
    buffers: list[pl.DataFrame | None] = [None] * len(streams)
    exhausted = [False] * len(streams)
    while True:
        for i, stream in enumerate(streams):
            while not exhausted[i] and (buffers[i] is None or buffers[i].height <= outliers):  # type: ignore[union-attr]
                try:
                    parsed = next(stream)
                except StopIteration:
                    exhausted[i] = True
                    break
                on_rejects(parsed.rejects)
                fresh = parsed.batch.filter(pl.col("@timestamp").is_not_null())
                held = buffers[i]
                buffers[i] = fresh if held is None else pl.concat([held, fresh], how="vertical")
        live = [b for b in buffers if b is not None and b.height]
        if not live:
            return
        horizons = [
            buffers[i]["@timestamp"].top_k(outliers + 1).min()  # type: ignore[index]
            for i in range(len(streams))
            if not exhausted[i] and buffers[i] is not None and buffers[i].height  # type: ignore[union-attr]
        ]
        released: list[pl.DataFrame] = []
        if horizons:
            horizon = min(horizons)  # type: ignore[type-var]
            for i, buf in enumerate(buffers):
                if buf is None or buf.height == 0:
                    continue
                ready = buf["@timestamp"] <= horizon
                released.append(buf.filter(ready))
                buffers[i] = buf.filter(~ready)
        else:
            released = live
            buffers = [None] * len(streams)
        out = pl.concat([r for r in released if r.height], how="vertical") if released else None
        if out is not None and out.height:
            yield out.sort("@timestamp", maintain_order=True)
