"""What every live source shares: the raw chunk, the bounded hand-off queue, the runner.

Concurrency model (asyncio): every source is a set of coroutines on one event loop, and
:class:`SourceRunner` runs that loop in a background thread. Sources push
:class:`RawChunk` s into one :class:`ChunkQueue`, a thread-safe queue bounded both in
chunks and in lines; the pipeline pulls from it in its own thread with
:meth:`ChunkQueue.get` and, once a chunk is processed (parsed, detected, stored), gives
its token back with :func:`ack` (or :meth:`SourceRunner.ack`). A full queue pushes back:
the file tail and TCP syslog wait (reading stops), HTTP ingest answers 429, UDP syslog
drops and counts (a datagram cannot wait). Memory therefore stays bounded whatever the
input rate.

The pipeline side, in full::

    chunks = ChunkQueue(max_chunks=256, max_lines=200_000)
    runner = SourceRunner([TailSource(files, chunks, registry_path), ...], chunks)
    runner.start()                      # binds sockets, returns when every source is ready
    while running:
        chunk = chunks.get(timeout=0.2)  # None on timeout
        if chunk is not None:
            ...process chunk.lines...
            ack(chunk.token)             # commits file offsets; a no-op for None
    runner.stop()
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge

from shopwatch.errors import ConfigError

__all__ = [
    "AckToken",
    "ChunkQueue",
    "Pressure",
    "RawChunk",
    "Source",
    "SourceMetrics",
    "SourceRunner",
    "ack",
    "decode_line",
    "decode_lines",
]

log = structlog.get_logger("shopwatch.sources")

#: How often a waiting producer re-checks a full queue (seconds).
_PUT_POLL_S = 0.005


class Pressure(Protocol):
    """What the queue asks of a memory governor: is the process over its mark?"""

    @property
    def pressed(self) -> bool:
        """True while input should be held back."""
        ...


@dataclass(frozen=True, slots=True)
class RawChunk:
    """Raw lines from one source, in arrival order, for the parser.

    ``lines`` are decoded (UTF-8, Latin-1 for a line that is not UTF-8) and carry no
    newline. ``first_line_no`` is the 1-based line number of ``lines[0]`` in its source;
    for files it continues across restarts (it comes from the offset registry), for
    network sources it counts messages since the listener started.
    """

    source: str
    format: str
    lines: list[str]
    first_line_no: int
    token: Any = None
    received: float = field(default_factory=time.monotonic)  # for arrival → stored latency


@runtime_checkable
class Source(Protocol):
    """A live source on the runner's event loop.

    ``start`` binds/open what it needs and returns once the source is ready (ports are
    known); the work continues in tasks it spawns. ``stop`` ends them and releases
    everything. ``ack`` may be called from any thread.
    """

    name: str

    async def start(self) -> None:
        """Begin delivering chunks; return once ready."""
        ...

    async def stop(self) -> None:
        """Stop delivering chunks and release files and sockets."""
        ...

    def ack(self, token: Any) -> None:
        """Hear that the chunk carrying ``token`` was fully processed (thread-safe)."""
        ...


@dataclass(frozen=True, slots=True)
class AckToken:
    """A chunk token that knows the source to give it back to (see :func:`ack`)."""

    owner: Source
    value: Any


def ack(token: Any) -> None:
    """Give a processed chunk's token back to its source; ``None`` tokens are ignored.

    Thread-safe; this is the callable the pipeline stores beside each chunk.
    """
    if isinstance(token, AckToken):
        token.owner.ack(token)


class SourceMetrics:
    """The sources' Prometheus counters, in a registry of their own (served by ``/metrics``).

    Labels come from small fixed sets: ``source`` is the kind (``tail``, ``http``,
    ``syslog-udp``, ``syslog-tcp``), never a file name.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.lines = Counter(
            "shopwatch_sources_lines", "Lines handed to the pipeline.", ["source"], registry=r
        )
        self.chunks = Counter(
            "shopwatch_sources_chunks", "Chunks handed to the pipeline.", ["source"], registry=r
        )
        self.dropped = Counter(
            "shopwatch_sources_dropped",
            "Lines or messages dropped before the pipeline, by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.rejected = Counter(
            "shopwatch_sources_rejected",
            "Input lines refused at the edge (HTTP ingest), by reason.",
            ["source", "reason"],
            registry=r,
        )
        self.requests = Counter(
            "shopwatch_sources_http_requests",
            "HTTP ingest requests by response status.",
            ["status"],
            registry=r,
        )
        self.rotations = Counter(
            "shopwatch_sources_rotations", "File rotations followed.", registry=r
        )
        self.truncations = Counter(
            "shopwatch_sources_truncations", "Files found truncated (restarted at 0).", registry=r
        )
        self.connections = Counter(
            "shopwatch_sources_connections",
            "TCP connections, by outcome (accepted, refused).",
            ["source", "outcome"],
            registry=r,
        )
        self.queued_lines = Gauge(
            "shopwatch_sources_queued_lines", "Lines waiting in the hand-off queue.", registry=r
        )
        self.queued_bytes = Gauge(
            "shopwatch_sources_queued_bytes",
            "Characters of the lines waiting in the hand-off queue.",
            registry=r,
        )
        self.busy = Counter(
            "shopwatch_sources_http_busy",
            "Ingest requests answered 429 before their body was read, by the bound that was "
            "reached (a queue bound, memory, inflight).",
            ["bound"],
            registry=r,
        )
        self.queue_full = Counter(
            "shopwatch_sources_queue_full",
            "Chunks the hand-off queue could not take at once, by the bound that was reached.",
            ["bound"],
            registry=r,
        )


class ChunkQueue:
    """Bounded, thread-safe FIFO of RawChunks between the sources and the pipeline.

    Bounded by chunk count, total lines and total characters of the lines (``max_bytes``;
    so a flood of large syslog messages is bounded in memory as well as in count): a chunk
    is refused when a bound would be passed, except that an empty queue always takes one
    chunk, so a single chunk larger than a bound cannot dead-lock its source (the sources
    bound their chunks: an ingest request by its body size and event cap, a tail read by
    its block size, a syslog batch by its message size and count). With a ``memory``
    governor (:class:`~shopwatch.pipeline.memory.MemoryGovernor`) it holds at most an
    eighth of ``max_bytes`` while the process is over its memory mark (bound ``memory``;
    still one chunk when empty). Each refusal is counted by the bound that was reached. Producers on the
    event loop use :meth:`offer` (never blocks) or ``await`` :meth:`put` (waits for room);
    the pipeline uses :meth:`get`.
    """

    def __init__(
        self,
        max_chunks: int = 256,
        max_lines: int = 200_000,
        *,
        max_bytes: int = 256 * 1024 * 1024,
        metrics: SourceMetrics | None = None,
        memory: Pressure | None = None,
    ) -> None:
        if max_chunks < 1 or max_lines < 1 or max_bytes < 1:
            raise ConfigError("ChunkQueue bounds must be at least 1 chunk, 1 line and 1 byte")
        self.max_chunks = max_chunks
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._items: deque[tuple[RawChunk, int]] = deque()
        self._lines = 0
        self._bytes = 0
        self._cond = threading.Condition()
        self._metrics = metrics
        self.memory = memory

    def __len__(self) -> int:
        return len(self._items)

    @property
    def lines(self) -> int:
        """Lines currently queued."""
        return self._lines

    @property
    def bytes(self) -> int:
        """Characters of the lines currently queued."""
        return self._bytes

    def _full(self, n: int, size: int) -> str | None:
        """The bound that taking a chunk of ``n`` lines and ``size`` characters would pass."""
        if not self._items:
            return None
        if len(self._items) >= self.max_chunks:
            return "chunks"
        if self._lines + n > self.max_lines:
            return "lines"
        if self._bytes + size > self.max_bytes:
            return "bytes"
        # Over the memory mark an eighth of the queue: still enough for the worker's batches.
        memory = self.memory
        if memory is not None and self._bytes + size > self.max_bytes // 8 and memory.pressed:
            return "memory"
        return None

    def refusal(self) -> str | None:
        """The bound that would refuse even the smallest chunk now; None if there is room.

        HTTP ingest asks before it reads a body, so a flood is answered 429 at once instead
        of being read, decoded and checked only to be refused (it counts those itself).
        """
        with self._cond:
            return self._full(1, 0)

    def offer(self, chunk: RawChunk, *, count: bool = True) -> bool:
        """Queue ``chunk`` if there is room; False (nothing queued) when full.

        A refusal is counted unless ``count`` is False (a producer retrying the same chunk).
        """
        n = len(chunk.lines)
        size = sum(map(len, chunk.lines))
        with self._cond:
            bound = self._full(n, size)
            if bound is None:
                self._items.append((chunk, size))
                self._lines += n
                self._bytes += size
                self._cond.notify()
        if self._metrics is not None:
            if bound is not None and count:
                self._metrics.queue_full.labels(bound).inc()
            self._metrics.queued_lines.set(self._lines)
            self._metrics.queued_bytes.set(self._bytes)
        return bound is None

    async def put(self, chunk: RawChunk, stopping: asyncio.Event | None = None) -> bool:
        """Queue ``chunk``, waiting for room; False if ``stopping`` was set first."""
        first = True
        while not self.offer(chunk, count=first):
            first = False
            if stopping is not None and stopping.is_set():
                return False
            await asyncio.sleep(_PUT_POLL_S)
        return True

    def get(self, timeout: float | None = None) -> RawChunk | None:
        """The oldest chunk, waiting up to ``timeout`` seconds (None = forever); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            chunk, size = self._items.popleft()
            self._lines -= len(chunk.lines)
            self._bytes -= size
        if self._metrics is not None:
            self._metrics.queued_lines.set(self._lines)
            self._metrics.queued_bytes.set(self._bytes)
        return chunk


def decode_line(raw: bytes) -> str:
    """UTF-8, else Latin-1 (which never fails), without a trailing CR.

    >>> decode_line(b"caf\\xc3\\xa9\\r"), decode_line(b"caf\\xe9")
    ('café', 'café')
    """
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def decode_lines(block: bytes) -> list[str]:
    """Split newline-terminated ``block`` (its last byte is ``\\n``) into decoded lines.

    Decodes the whole block at once when it is valid UTF-8 (the common case), else line
    by line with the Latin-1 fallback.

    >>> decode_lines(b"a\\r\\nb\\xff\\n")
    ['a', 'bÿ']
    """
    body = block[:-1] if block.endswith(b"\n") else block
    try:
        lines = body.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        return [decode_line(raw) for raw in body.split(b"\n")]
    if b"\r" in body:
        lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    return lines


class SourceRunner:
    """Runs sources on an asyncio loop in a background thread."""

    def __init__(self, sources: Sequence[Source], queue: ChunkQueue) -> None:
        names = [s.name for s in sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ConfigError(f"two sources share the name(s) {dupes}; give each its own name")
        self.sources = list(sources)
        self.queue = queue
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._started: list[Source] = []

    def start(self, timeout: float = 10.0) -> None:
        """Start the loop thread and every source; raise the first start failure."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(
            target=loop.run_forever, name="shopwatch-sources", daemon=True
        )
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start_all(), loop).result(timeout)
        except BaseException:
            self.stop(timeout)
            raise
        log.info("sources_started", sources=[s.name for s in self.sources])

    async def _start_all(self) -> None:
        for source in self.sources:
            await source.start()
            self._started.append(source)

    async def _stop_all(self) -> None:
        for source in reversed(self._started):
            try:
                await source.stop()
            except Exception:  # one source failing to stop must not keep the others open
                log.exception("source_stop_failed", source=source.name)
        self._started.clear()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every source (HTTP answers 503 meanwhile), then the loop thread."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._stop_all(), loop).result(timeout)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
            self._loop = None
            self._thread = None
        log.info("sources_stopped", sources=[s.name for s in self.sources])

    def ack(self, token: Any) -> None:
        """Same as :func:`ack`."""
        ack(token)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The sources' event loop while running."""
        return self._loop
