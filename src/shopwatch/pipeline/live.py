"""Live monitoring: raw chunks from sources → micro-batches → Engine → store, with checkpoints.

Sources (file tails, HTTP ingest, syslog) put raw chunks on the sources' bounded
:class:`~shopwatch.sources.base.ChunkQueue` (so a flood is pushed back to the source instead
of growing memory); code that is not a source (the demo's simulator) uses
:meth:`LiveRunner.submit`. One worker thread drains the queue in micro-batches bounded
by size (``batch_max_events``) and latency (``batch_max_latency_ms``), parses each chunk
with its format, runs the batch through the Engine, stores the alerts, and only then acks
the chunks, so a source's offset never runs ahead of what was processed. Checkpoints are
written by the worker between batches, after those acks, so the checkpoint callback can
save the engine snapshot and the acked offsets as one consistent pair.

With a memory governor (``runtime.memory_max_bytes``) the worker sizes its batches by the
peak memory of the last one (halved past the high mark, grown back by a quarter under the
low one, never above ``batch_max_events`` nor above what fits under the mark at the
memory a line took in the last large batch), gives freed memory back after each batch
while the process is over its mark, and sheds half of the detector state (at most every
:data:`SHED_AFTER_IDLE_S`) only near the ceiling itself (``critical``): once it has been
idle that long over it, or when batches of :data:`MIN_BATCH_EVENTS` still reach it (see
:mod:`shopwatch.pipeline.memory`).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import structlog

from shopwatch.config import RuntimeSettings
from shopwatch.contract import Alert
from shopwatch.parse import parse_frame, sniff_format
from shopwatch.parse.base import ParseContext
from shopwatch.pipeline.engine import SOURCE, Engine
from shopwatch.pipeline.memory import MemoryGovernor
from shopwatch.sources.base import ChunkQueue, RawChunk, ack

__all__ = ["LiveRunner", "LiveStats"]

log = structlog.get_logger("shopwatch.live")

#: Seconds the worker must be idle and over the memory mark before it sheds state (the
#: allocators give back freed memory on their own within seconds; state is the last resort).
SHED_AFTER_IDLE_S = 2.0
#: Least seconds between two attempts to bring memory down.
_RELIEF_EVERY_S = 0.5
#: Below this much state there is nothing worth shedding.
_SHED_FLOOR_BYTES = 1 << 20
#: The smallest batch the memory governor shrinks batches to (events; chunks stay whole).
MIN_BATCH_EVENTS = 500
#: Batches of at least this many lines measure the working memory of a line.
_MEASURE_LINES = 2000


@dataclass
class LiveStats:
    """Live figures for the terminal summary and ``/api/stats``."""

    started: float = field(default_factory=time.monotonic)
    events: int = 0
    lines: int = 0
    rejected: int = 0
    batches: int = 0
    alerts_stored: int = 0
    refused: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=20_000))
    recent: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=600))

    def rate(self, window_s: float = 5.0) -> float:
        """Events per second over the last ``window_s`` seconds of wall time."""
        now = time.monotonic()
        total = sum(n for t, n in self.recent if now - t <= window_s)
        span = min(window_s, max(now - self.started, 1e-3))
        return total / span

    def latency_ms(self, q: float) -> float | None:
        """Quantile ``q`` of arrival → stored latency, in milliseconds."""
        if not self.latencies:
            return None
        return float(np.quantile(np.fromiter(self.latencies, float), q) * 1000)


def _arrival_clock(arrivals: list[RawChunk]) -> datetime:
    """Wall-clock time at which the first chunk of a batch arrived (events are bounded by it).

    The earliest arrival, not the time of processing: a queue backlog must not widen the
    window in which an event dated in the future is accepted.
    """
    waited = time.monotonic() - min(a.received for a in arrivals)
    return datetime.now(UTC) - timedelta(seconds=max(waited, 0.0))


class LiveRunner:
    """Micro-batching worker between sources and the Engine."""

    def __init__(
        self,
        engine: Engine,
        *,
        runtime: RuntimeSettings | None = None,
        save_alerts: Callable[[list[Alert]], int] | None = None,
        checkpoint: Callable[[bytes], None] | None = None,
        on_alerts: Callable[[pl.DataFrame], None] | None = None,
        inbox: ChunkQueue | None = None,
        year: int | None = None,
        timezone: str = "UTC",
        memory: MemoryGovernor | None = None,
    ) -> None:
        self.engine = engine
        self.memory = memory
        self._last_relief = 0.0
        self._last_shed = -float("inf")
        self._line_bytes = 0.0  # working memory per line, measured on the last large batch
        self._idle_pressed_since: float | None = None
        self.runtime = runtime or engine.runtime
        self.batch_limit = self.runtime.batch_max_events
        self.save_alerts = save_alerts
        self.checkpoint = checkpoint
        self.on_alerts = on_alerts
        self.inbox = inbox or ChunkQueue(
            max_chunks=1024, max_lines=4 * self.runtime.batch_max_events
        )
        self.stats = LiveStats()
        self.year = year
        self.timezone = timezone
        self._formats: dict[str, str] = {}
        self._last_checkpoint = time.monotonic()
        self._checkpoint_due = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the sources' side ---------------------------------------------------------

    def submit(
        self,
        source: str,
        fmt: str,
        lines: list[str],
        first_line_no: int = 1,
        *,
        timeout: float = 5.0,
    ) -> bool:
        """Queue raw lines, waiting up to ``timeout`` for room; False (and counted) if none came."""
        if not lines:
            return True
        chunk = RawChunk(source, fmt, lines, first_line_no)
        deadline = time.monotonic() + timeout
        while not self.inbox.offer(chunk):
            if time.monotonic() >= deadline or self._stop.is_set():
                self.stats.refused += 1
                return False
            time.sleep(0.005)
        return True

    @property
    def queued(self) -> int:
        """Chunks waiting to be processed."""
        return len(self.inbox)

    # -- the worker ----------------------------------------------------------------

    def start(self) -> None:
        """Run the worker in a background thread."""
        self._thread = threading.Thread(target=self._loop, name="shopwatch-live", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain what is queued, write a last checkpoint and stop the worker.

        When the worker does not finish within ``timeout`` no last checkpoint is written
        (the state would be snapshotted while a batch changes it): the previous one stays,
        and what came after it is read again at the next start.
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("checkpoint_skipped", reason="worker_still_busy", timeout_s=timeout)
                return
        self.write_checkpoint()

    def _loop(self) -> None:
        while not self._stop.is_set() or len(self.inbox):
            try:
                self.step(wait_s=0.2)
            except Exception:  # keep monitoring; the failure is logged with its traceback
                log.exception("live_batch_failed")

    def _collect(self, wait_s: float) -> list[RawChunk]:
        first = self.inbox.get(timeout=wait_s)
        if first is None:
            return []
        arrivals = [first]
        count = len(first.lines)
        deadline = first.received + self.runtime.batch_max_latency_ms / 1000
        while count < self.batch_limit:
            nxt = self.inbox.get(timeout=max(deadline - time.monotonic(), 0.0))
            if nxt is None:
                break
            arrivals.append(nxt)
            count += len(nxt.lines)
        return arrivals

    def _format_of(self, arrival: RawChunk) -> str:
        if arrival.format != "auto":
            return arrival.format
        known = self._formats.get(arrival.source)
        if known is None:
            known = sniff_format([line for line in arrival.lines[:50] if line.strip()]) or "auto"
            if known != "auto":
                self._formats[arrival.source] = known
        return known

    def step(self, wait_s: float = 0.2) -> int:
        """Process one micro-batch (waiting up to ``wait_s`` for the first chunk)."""
        arrivals = self._collect(wait_s)
        if not arrivals:
            self._maybe_checkpoint()
            self._relieve(idle=True)
            return 0
        rss_before = 0
        if self.memory is not None:
            self.memory.take_peak()  # the batch's own peak is measured from here
            rss_before = self.memory.rss()
        # One parse per (source, format): the parsers' cost is mostly per call, not per line.
        groups: dict[tuple[str, str], list[RawChunk]] = {}
        for arrival in arrivals:
            groups.setdefault((arrival.source, self._format_of(arrival)), []).append(arrival)
        batches = []
        for (source, fmt), chunks in groups.items():
            lines = [line for chunk in chunks for line in chunk.lines]
            numbers = np.concatenate(
                [
                    np.arange(c.first_line_no, c.first_line_no + len(c.lines), dtype=np.int64)
                    for c in chunks
                ]
            )
            frame = pl.DataFrame(
                {"line": lines, "line_no": numbers}, schema={"line": pl.String, "line_no": pl.Int64}
            )
            ctx = ParseContext(source=source, year=self.year, timezone=self.timezone)
            parsed = parse_frame(frame, fmt, ctx)
            self.engine.record_rejects(parsed.rejects)
            self.stats.rejected += parsed.rejects.height
            self.stats.lines += len(lines)
            if parsed.batch.height:  # rows keep their source: each has its own watermark
                batches.append(parsed.batch.with_columns(pl.lit(source).alias(SOURCE)))
        events = 0
        if batches:
            batch = pl.concat(batches, how="vertical").sort("@timestamp", maintain_order=True)
            events = batch.height
            alerts = self.engine.process(batch, now=_arrival_clock(arrivals))
            if alerts.height:
                if self.save_alerts is not None:
                    self.stats.alerts_stored += self.save_alerts(
                        [Alert.from_row(r) for r in alerts.iter_rows(named=True)]
                    )
                if self.on_alerts is not None:
                    self.on_alerts(alerts)
        done = time.monotonic()
        for arrival in arrivals:
            self.stats.latencies.append(done - arrival.received)
            ack(arrival.token)
        self.stats.events += events
        self.stats.batches += 1
        self.stats.recent.append((done, events))
        n_lines = sum(len(arrival.lines) for arrival in arrivals)
        del arrivals, groups, batches
        self._size_batches(rss_before, n_lines)
        self._maybe_checkpoint()
        self._relieve(idle=False)
        return events

    def _size_batches(self, rss_before: int, n_lines: int) -> None:
        """Size the next batches by what this one took (see the module docstring).

        Halve the limit after a batch that passed the high mark, regrow it by a quarter
        under the low one; and never let it exceed what fits under the high mark at the
        memory one line took in the last batch of :data:`_MEASURE_LINES` or more (a batch's
        working memory grows with its size), so a flood is met before it passes the mark.
        """
        memory = self.memory
        if memory is None:
            return
        peak = memory.take_peak()
        limit, top = self.batch_limit, self.runtime.batch_max_events
        floor = min(MIN_BATCH_EVENTS, top)
        if peak > memory.critical and limit <= floor:
            # Batches are as small as they go and still reach the ceiling: what is left is
            # the detectors' state and the temporaries that grow with it.
            self._shed_half("batch_at_floor")
        if peak > memory.high:
            new = max(floor, limit // 2)
        elif peak < memory.low and limit < top:
            new = min(top, limit + max(limit // 4, 1))
        else:
            new = limit
        if n_lines >= _MEASURE_LINES:
            self._line_bytes = max(peak - rss_before, 0) / n_lines
        if self._line_bytes:
            fits = int((memory.high - memory.rss()) / self._line_bytes)
            new = max(floor, min(new, fits))
        self.batch_limit = new
        if new != limit:
            log.info("batch_limit", events=new, peak_rss_mb=round(peak / 2**20))

    def _relieve(self, *, idle: bool) -> None:
        """Over the memory mark: give freed memory back; idle and still over, shed state."""
        memory = self.memory
        if memory is None or not memory.pressed:
            self._idle_pressed_since = None
            return
        now = time.monotonic()
        if not idle or len(self.inbox):
            self._idle_pressed_since = None
        elif self._idle_pressed_since is None:
            self._idle_pressed_since = now
        if now - self._last_relief < _RELIEF_EVERY_S:
            return
        self._last_relief = now
        memory.trim()
        since = self._idle_pressed_since
        if not memory.pressed or since is None or now - since < SHED_AFTER_IDLE_S:
            return
        # Idle over the high mark only holds input back; state goes only near the ceiling.
        if memory.rss() <= memory.critical or not self._shed_half("idle"):
            memory.at_rest_over()
        self._idle_pressed_since = now  # give the allocators time before shedding again

    def _shed_half(self, why: str) -> bool:
        """Shed half of the detector state (counted), at most every SHED_AFTER_IDLE_S."""
        memory = self.memory
        now = time.monotonic()
        held = self.engine.state_bytes
        if memory is None or held <= _SHED_FLOOR_BYTES:
            return False
        if now - self._last_shed < SHED_AFTER_IDLE_S:
            return True
        self._last_shed = now
        rows = self.engine.shed_state(held // 2)
        memory.relief.labels(f"shed_state_{why}").inc()
        log.warning("memory_shed_state", why=why, rows=rows, state_bytes_before=held)
        memory.trim()
        return True

    def request_checkpoint(self) -> None:
        """Have the worker write a checkpoint after its current batch (thread-safe)."""
        self._checkpoint_due.set()

    def _maybe_checkpoint(self) -> None:
        due = self._checkpoint_due.is_set()
        if due or time.monotonic() - self._last_checkpoint >= self.runtime.snapshot_interval_s:
            self.write_checkpoint()

    def write_checkpoint(self) -> None:
        """Snapshot the engine's state through the checkpoint callback.

        Runs on the worker between batches (or after it stopped), once every processed
        chunk was acked: the callback may save the sources' acked offsets beside the
        snapshot, and the two then describe the same point of the input.
        """
        self._last_checkpoint = time.monotonic()
        self._checkpoint_due.clear()
        if self.checkpoint is not None:
            self.checkpoint(self.engine.snapshot())

    def figures(self) -> dict[str, Any]:
        """Live figures (JSON-ready) for the terminal and the web API."""
        return {
            "events_per_s": round(self.stats.rate(), 1),
            "events": self.stats.events,
            "lines": self.stats.lines,
            "rejected": self.stats.rejected,
            "refused_chunks": self.stats.refused,
            "queued_chunks": self.queued,
            "alerts": self.engine.stats.alerts,
            "alerts_by_category": dict(self.engine.stats.alerts_by_category),
            "late_events": self.engine.stats.late_events,
            "out_of_bounds": sum(sum(c.values()) for c in self.engine.stats.out_of_bounds.values()),
            "state_shed_rows": sum(self.engine.stats.shed_rows.values()),
            "latency_p50_ms": self.stats.latency_ms(0.5),
            "latency_p99_ms": self.stats.latency_ms(0.99),
            "state_bytes": self.engine.state_bytes,
            "rss_bytes": self.memory.rss() if self.memory is not None else None,
            "memory_pressed": self.memory.pressed if self.memory is not None else None,
            "watermark": self.engine.watermark.isoformat() if self.engine.watermark else None,
        }
