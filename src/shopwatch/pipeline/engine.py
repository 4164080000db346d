"""Enrichment and detection over event-time batches: parse → enrich → detect → sinks.

:class:`Engine` runs enrichers and detectors over event-time batches and owns the keyed
state, the watermark and the runtime counters. Replay and live monitoring share it: replay
feeds it the merged, time-ordered batches of files (:func:`merge_by_time`), live mode feeds
it the micro-batches of :class:`shopwatch.runtime.LiveRunner`.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import polars as pl
import structlog
from prometheus_client import Counter as Counter_
from prometheus_client import Gauge

from shopwatch.config import RuntimeSettings
from shopwatch.contract import empty_alerts
from shopwatch.detect.conditions import derived_column
from shopwatch.detect.health import DetectorHealth
from shopwatch.detect.registry import Detector
from shopwatch.detect.state import KeyedState
from shopwatch.enrich.base import Enricher
from shopwatch.parse.base import Parsed

__all__ = ["Engine", "EngineStats", "merge_by_time"]

log = structlog.get_logger("shopwatch.pipeline")

EVENTS = Counter_("shopwatch_pipeline_events_total", "Events run through the detectors.")
LATE = Counter_(
    "shopwatch_pipeline_late_events_total", "Events older than the watermark when they arrived."
)
ALERTS = Counter_("shopwatch_detect_alerts_total", "Alerts raised, by category.", ["category"])
FAILURES = Counter_(
    "shopwatch_detect_errors_total", "Detector calls that raised, by detector.", ["detector"]
)
STATE = Gauge("shopwatch_detect_state_bytes", "Memory held by detector state.")

AlertSink = Callable[[pl.DataFrame], None]

_SNAPSHOT_VERSION = 1


@dataclass
class EngineStats:
    """Counters of one engine since it started (restored across restarts)."""

    events: int = 0
    batches: int = 0
    late_events: int = 0
    alerts: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    alerts_by_category: Counter[str] = field(default_factory=Counter)
    detector_errors: Counter[str] = field(default_factory=Counter)
    detect_seconds: dict[str, float] = field(default_factory=dict)
    max_event_time: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return {
            "events": self.events,
            "batches": self.batches,
            "late_events": self.late_events,
            "alerts": self.alerts,
            "rejected": dict(self.rejected),
            "alerts_by_category": dict(self.alerts_by_category),
            "detector_errors": dict(self.detector_errors),
            "max_event_time": self.max_event_time.isoformat() if self.max_event_time else None,
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
    ) -> None:
        self.runtime = runtime or RuntimeSettings()
        self.detectors = list(detectors)
        self.enrichers = list(enrichers)
        self.sinks = list(sinks)
        self.lateness = timedelta(seconds=self.runtime.allowed_lateness_s)
        max_age = timedelta(seconds=self.runtime.state_max_age_s)
        self.states: dict[str, KeyedState] = {
            d.id: KeyedState(d.keys, max_keys=self.runtime.state_max_keys, max_age=max_age)
            for d in self.detectors
        }
        self.stats = EngineStats()
        self.health = DetectorHealth([d.id for d in self.detectors])
        self._derived = sorted({f for d in self.detectors for f in getattr(d, "derived", ())})
        self._last_evict: datetime | None = None

    @property
    def watermark(self) -> datetime | None:
        """Event time up to which the engine considers input complete (max seen - lateness)."""
        if self.stats.max_event_time is None:
            return None
        return self.stats.max_event_time - self.lateness

    def record_rejects(self, rejects: pl.DataFrame) -> None:
        """Count rejected lines by reason (they never reach the detectors)."""
        if rejects.height:
            for reason, n in rejects.group_by("reason").len().iter_rows():
                self.stats.rejected[str(reason)] += int(n)

    def process(self, batch: pl.DataFrame) -> pl.DataFrame:
        """Run one batch through enrichment and every detector; returns its alerts."""
        if batch.height == 0:
            return empty_alerts()
        batch = batch.filter(pl.col("@timestamp").is_not_null())
        if not batch["@timestamp"].is_sorted():
            batch = batch.sort("@timestamp", maintain_order=True)
        watermark = self.watermark
        if watermark is not None:
            self.stats.late_events += int(
                batch.select((pl.col("@timestamp") < watermark).sum()).item()
            )
        for enricher in self.enrichers:
            batch = enricher.enrich(batch)
        derived = [f for f in self._derived if f.split("|", 1)[0] in batch.columns]
        if derived:  # modified fields (url.original|decoded) computed once for every detector
            batch = batch.with_columns([derived_column(f) for f in derived])
        outputs: list[pl.DataFrame] = []
        for detector in self.detectors:
            started = time.perf_counter()
            try:
                found = detector.detect(batch, self.states[detector.id])
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
                outputs.append(found)
        batch_max = batch["@timestamp"].max()
        assert isinstance(batch_max, datetime)
        if self.stats.max_event_time is None or batch_max > self.stats.max_event_time:
            self.stats.max_event_time = batch_max
        self.stats.events += batch.height
        self.stats.batches += 1
        EVENTS.inc(batch.height)
        self._maybe_evict()
        if not outputs:
            return empty_alerts()
        alerts = pl.concat(outputs, how="vertical").sort(["@timestamp", "rule.id", "alert.id"])
        alerts = raise_risk_by_reputation(alerts, batch)
        self.stats.alerts += alerts.height
        for category, n in alerts.group_by("rule.category").len().iter_rows():
            self.stats.alerts_by_category[str(category)] += int(n)
            ALERTS.labels(str(category)).inc(int(n))
        for sink in self.sinks:
            sink(alerts)
        return alerts

    def _maybe_evict(self) -> None:
        watermark = self.watermark
        if watermark is None:
            return
        if self._last_evict is not None and watermark - self._last_evict < timedelta(seconds=10):
            return
        self._last_evict = watermark
        for state in self.states.values():
            state.evict(watermark)
        STATE.set(self.state_bytes)

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
        """All detector state, the watermark and counters as one zip blob."""
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            meta = {
                "version": _SNAPSHOT_VERSION,
                "stats": self.stats.as_dict(),
                "detectors": sorted(self.states),
                "extra": extra or {},
            }
            archive.writestr("meta.json", json.dumps(meta))
            for det_id, state in self.states.items():
                for name, blob in state.snapshot().items():
                    archive.writestr(f"state/{det_id}/{name}", blob)
        return buf.getvalue()

    def restore(self, blob: bytes) -> dict[str, Any]:
        """Load a :meth:`snapshot`; returns its ``extra``. Unknown detectors are ignored."""
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            meta = json.loads(archive.read("meta.json"))
            per_detector: dict[str, dict[str, bytes]] = {}
            for name in archive.namelist():
                if name.startswith("state/"):
                    _, det_id, table = name.split("/", 2)
                    per_detector.setdefault(det_id, {})[table] = archive.read(name)
        for det_id, tables in per_detector.items():
            if det_id in self.states:
                self.states[det_id].restore(tables)
        saved = meta.get("stats", {})
        self.stats.events = int(saved.get("events", 0))
        self.stats.alerts = int(saved.get("alerts", 0))
        self.stats.late_events = int(saved.get("late_events", 0))
        self.stats.rejected.update(saved.get("rejected", {}))
        self.stats.alerts_by_category.update(saved.get("alerts_by_category", {}))
        if saved.get("max_event_time"):
            self.stats.max_event_time = datetime.fromisoformat(saved["max_event_time"])
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
    streams: Sequence[Iterator[Parsed]], on_rejects: Callable[[pl.DataFrame], None]
) -> Iterator[pl.DataFrame]:
    """Merge per-file chunk streams into batches in event-time order.

    Each stream is assumed roughly ordered in time (as a log file is). A batch releases
    every buffered event up to the smallest "latest time read" among the streams not yet
    exhausted, so no stream is ever behind another by more than one chunk. Ties keep the
    stream order, then the line order: deterministic, run after run.
    """
    buffers: list[pl.DataFrame | None] = [None] * len(streams)
    exhausted = [False] * len(streams)
    while True:
        for i, stream in enumerate(streams):
            while not exhausted[i] and (buffers[i] is None or buffers[i].height == 0):  # type: ignore[union-attr]
                try:
                    parsed = next(stream)
                except StopIteration:
                    exhausted[i] = True
                    break
                on_rejects(parsed.rejects)
                buffers[i] = parsed.batch.filter(pl.col("@timestamp").is_not_null())
        live = [b for b in buffers if b is not None and b.height]
        if not live:
            return
        horizons = [
            buffers[i]["@timestamp"].max()  # type: ignore[index]
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

