"""A running shopwatch: store, engine (restored from its checkpoint), live runner, sources, web.

``shopwatch run`` and ``shopwatch demo`` both build a :class:`Service`; the demo adds the
traffic simulator as one more producer. :meth:`Service.stop` shuts down in the safe order:
sources first (HTTP answers 503), then the runner drains what is queued, acks it and writes
a last checkpoint, then the web server and the store close.

Crash consistency: the file tail's offsets are not written on their own. Each checkpoint
saves the engine snapshot and the tail's acked offsets in one store transaction (rows
:data:`CHECKPOINT` and :data:`OFFSETS`), taken together on the runner's worker between
batches. After ``kill -9`` the restored state and the offsets describe the same point of
the input, so the tail reads again exactly what the state has not seen; alerts that were
stored from those lines before the crash come again with the same id and are not stored
twice (the store inserts alerts by id, ignoring ids it has).
"""

from __future__ import annotations

import secrets
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import structlog

from shopwatch.config import RuntimeSettings, Settings
from shopwatch.contract import Alert
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.live import LiveRunner
from shopwatch.pipeline.memory import MemoryGovernor
from shopwatch.sources.base import ChunkQueue, SourceMetrics, SourceRunner
from shopwatch.sources.registry import OffsetRegistry
from shopwatch.store import Store

__all__ = ["CHECKPOINT", "OFFSETS", "Service", "ensure_web_token", "ingest_rejects"]

log = structlog.get_logger("shopwatch.service")

#: Checkpoint name of the engine snapshot.
CHECKPOINT = "engine"
#: Checkpoint name of the file tail's offsets, always saved in one transaction with CHECKPOINT.
OFFSETS = "offsets:tail"


def ensure_web_token(settings: Settings) -> str:
    """The web API token: from settings, else one generated and kept in the data folder (0600)."""
    if settings.web.token is not None:
        return settings.web.token.get_secret_value()
    path = settings.data_dir / "web-token"
    if path.is_file():
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token
    token = secrets.token_urlsafe(24)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(token + "\n", encoding="utf-8")
    return token


def ingest_rejects(
    lines: list[str], runtime: RuntimeSettings | None = None
) -> list[tuple[int, str]]:
    """``(index, reason)`` of the ECS lines the pipeline would reject (HTTP ingest answers them).

    The parser's own checks, without its metrics (the pipeline counts when it parses),
    then, with ``runtime``, the engine's event-time bounds against the time of arrival
    (``future_timestamp`` / ``past_timestamp``), so a sender is told what will not be run.
    """
    from shopwatch.parse import ParseContext  # registers every format
    from shopwatch.parse.base import FORMATS
    from shopwatch.pipeline.engine import FUTURE, PAST

    frame = pl.DataFrame(
        {"line": lines, "line_no": list(range(1, len(lines) + 1))},
        schema={"line": pl.String, "line_no": pl.Int64},
    )
    parsed = FORMATS["ecs"].parse(frame, ParseContext(source="http"))
    found = [
        (int(n) - 1, str(r)) for n, r in parsed.rejects.select("line_no", "reason").iter_rows()
    ]
    if runtime is not None and parsed.batch.height:
        # One event per accepted line, in line order: row i is the i-th line not rejected.
        refused = {i for i, _ in found}
        kept = pl.Series([i for i in range(len(lines)) if i not in refused], dtype=pl.Int64)
        if kept.len() == parsed.batch.height:
            now = datetime.now(UTC)
            ts = parsed.batch["@timestamp"]
            for bound, reason, late in (
                (runtime.max_future_skew_s, FUTURE, False),
                (runtime.max_past_age_s, PAST, True),
            ):
                if bound is None:
                    continue
                shift = timedelta(seconds=bound)
                bad = (ts < now - shift) if late else (ts > now + shift)
                found += [(int(i), reason) for i in kept.filter(bad.fill_null(False))]
    return sorted(found)


def _expose(registries: list[Any]) -> None:
    """Serve stage registries (sources, feeds) on ``/metrics`` with the default one."""
    from prometheus_client import REGISTRY

    for registry in registries:
        if registry is None:
            continue
        try:
            REGISTRY.register(registry)
        except ValueError:  # already exposed (a second service in one process)
            log.debug("metrics_already_exposed")


@dataclass
class Service:
    """Everything a live shopwatch runs, wired once."""

    settings: Settings
    with_sources: bool = True
    with_web: bool = True
    store: Store = field(init=False)
    runner: LiveRunner = field(init=False)
    newest: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=50))
    web_url: str | None = None
    token: str | None = None
    _sources: SourceRunner | None = None
    _tail: Any = None
    _web: Any = None
    _producers: list[threading.Thread] = field(default_factory=list)
    _stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        settings = self.settings
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # only ours to read
        self.store = Store.open(settings.store_url)
        engine = build_engine(settings, live=True)
        engine.warm_up()
        blob = self.store.load_checkpoint(CHECKPOINT)
        if blob is not None:
            try:
                engine.restore(blob)
                log.info("checkpoint_restored", events=engine.stats.events, bytes=len(blob))
            except Exception:  # a snapshot from an older version must not block the start
                log.exception("checkpoint_unreadable")
        self.offsets = self._load_offsets()
        self.metrics = SourceMetrics()
        ceiling = settings.runtime.memory_max_bytes
        self.memory = MemoryGovernor(ceiling) if ceiling is not None else None
        _expose(
            [
                self.metrics.registry,
                self.memory.registry if self.memory is not None else None,
                *(getattr(e, "metrics_registry", None) for e in engine.enrichers),
            ]
        )
        queue = ChunkQueue(
            max_chunks=1024,
            max_lines=max(
                settings.sources.http.max_queued_events, settings.runtime.batch_max_events
            ),
            max_bytes=settings.runtime.queue_max_bytes,
            metrics=self.metrics,
            memory=self.memory,
        )
        self.runner = LiveRunner(
            engine,
            runtime=settings.runtime,
            save_alerts=self.store.save_alerts,
            checkpoint=self._save_checkpoint,
            on_alerts=self._remember,
            inbox=queue,
            year=settings.year,
            timezone=settings.timezone,
            memory=self.memory,
        )

    def _load_offsets(self) -> OffsetRegistry:
        """The tail's offsets as of the last checkpoint (or the registry file of older versions)."""
        saved = self.store.load_checkpoint(OFFSETS)
        if saved is not None:
            return OffsetRegistry.from_bytes(saved, f"checkpoint {OFFSETS!r} in {self.store.url}")
        legacy = self.settings.data_dir / "sources" / "offsets.json"
        if legacy.is_file():  # written by versions that committed offsets on their own
            registry = OffsetRegistry.from_bytes(legacy.read_bytes(), str(legacy))
            log.info("offsets_imported", path=str(legacy), files=len(registry.entries()))
            return registry
        return OffsetRegistry()

    def _save_checkpoint(self, state: bytes) -> None:
        """Save the engine snapshot and the offsets it has seen, in one transaction.

        Called by the runner's worker after every processed chunk was acked, so the tail's
        offsets are exactly those of the lines in ``state``.
        """
        offsets = self._tail.offsets() if self._tail is not None else self.offsets.dumps()
        self.store.save_checkpoints({CHECKPOINT: state, OFFSETS: offsets})

    def _remember(self, alerts: pl.DataFrame) -> None:
        for row in alerts.tail(50).iter_rows(named=True):
            self.newest.appendleft(Alert.from_row(row).to_dict())

    def _build_sources(self) -> list[Any]:
        from shopwatch.sources.http import HttpSource
        from shopwatch.sources.syslog import SyslogSource
        from shopwatch.sources.tail import TailSource

        settings = self.settings
        queue = self.runner.inbox
        found: list[Any] = []
        if settings.sources.files:
            self._tail = TailSource.from_settings(
                settings,
                queue,
                self.metrics,
                registry=self.offsets,
                on_position=self.runner.request_checkpoint,
            )
            found.append(self._tail)
        if settings.sources.syslog is not None:
            found.append(SyslogSource.from_settings(settings.sources.syslog, queue, self.metrics))
        if settings.sources.http.enabled:
            found.append(
                HttpSource.from_settings(
                    settings.sources.http,
                    queue,
                    self.metrics,
                    validate=partial(ingest_rejects, runtime=settings.runtime),
                )
            )
        return found

    def start(self) -> None:
        """Start the runner, the sources and the web server."""
        if self.memory is not None:
            self.memory.start()
        self.runner.start()
        if self.with_sources:
            sources = self._build_sources()
            if sources:
                self._sources = SourceRunner(sources, self.runner.inbox)
                self._sources.start()
        if self.with_web and self.settings.web.enabled:
            from shopwatch.web.app import create_app, serve

            self.token = ensure_web_token(self.settings)
            app = create_app(self.store, token=self.token, stats=self.figures)
            self._web = serve(
                app,
                host=self.settings.web.host,
                port=self.settings.web.port,
                allowed_hosts=self.settings.web.allowed_hosts,
            )
            self.web_url = f"http://{self.settings.web.host}:{self._web.port}"
        log.info("service_started", web=self.web_url)

    def add_producer(self, target: Callable[[threading.Event], None], name: str) -> None:
        """Run ``target(stop_event)`` in a thread until :meth:`stop` (the demo's simulator)."""
        thread = threading.Thread(target=target, args=(self._stopping,), name=name, daemon=True)
        self._producers.append(thread)
        thread.start()

    def figures(self) -> dict[str, Any]:
        """Live runtime figures (for the terminal and ``/api/stats``), detector health too."""
        return {**self.runner.figures(), "detectors": self.runner.engine.health.as_dict()}

    def stop(self) -> None:
        """Stop producers and sources, drain and checkpoint, close the web server and store."""
        self._stopping.set()
        for thread in self._producers:
            thread.join(timeout=5)
        if self._sources is not None:
            self._sources.stop()
        self.runner.stop()
        if self.memory is not None:
            self.memory.stop()
        self.runner.engine.close()
        if self._web is not None:
            self._web.stop()
        self.store.close()
        log.info("service_stopped", events=self.runner.stats.events)

    @property
    def data_dir(self) -> Path:
        """Where the database, offsets and token live."""
        return self.settings.data_dir
