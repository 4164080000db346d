"""Syslog listener on UDP and TCP (RFC 3164 and RFC 5424 messages, passed on verbatim).

- UDP: one datagram holds one message, or several separated by newlines.
- TCP: both framings of RFC 6587, chosen per message: octet counting (``<len> <msg>``,
  recognised by a leading run of digits and a space) and newline-delimited (anything
  else, e.g. ``<34>1 2024-...\\n``); one segment may hold many messages and a message may
  span segments.
- TCP connections are bounded so that silent or slow peers cannot lock real senders
  out: a connection silent for ``idle_timeout_s`` is closed (``closed_idle``); at most
  ``max_connections`` are open at once, and at most ``max_connections_per_ip`` from one
  address. A newcomer past either limit takes the place of the longest-silent connection
  under that limit when it has been silent for ``min_idle_to_evict_s`` (``evicted``), and
  is closed at once otherwise (``refused``). Outcomes are counted in
  ``shopwatch_sources_connections_total{source="syslog-tcp",outcome}``; open
  connections are the gauge ``shopwatch_sources_open_connections{source="syslog-tcp"}``.
- A message longer than ``max_message_bytes`` is dropped, counted in
  ``shopwatch_sources_dropped_total{reason="oversize"}`` and logged (once per datagram or
  read, with the count) — never a crash. The rest of the stream carries on.

Messages are decoded (UTF-8, Latin-1 fallback), stripped of trailing CR/LF/NUL, and sent
as ``RawChunk(format="syslog", source="syslog-udp" | "syslog-tcp")``, batched: a batch
goes out at ``batch_lines`` messages or ``flush_interval_s`` after its first message.
When the hand-off queue is full, TCP readers stop reading (the sender is pushed back) and
UDP messages beyond ``max_pending_lines`` are dropped and counted (``queue_full``).
``first_line_no`` counts messages per transport since the listener started.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from prometheus_client import CollectorRegistry, Gauge

from shopwatch.config import SyslogSource as SyslogSettings
from shopwatch.errors import ConfigError
from shopwatch.sources.base import ChunkQueue, RawChunk, SourceMetrics, decode_line

__all__ = ["OctetOrLineFramer", "SyslogSource"]

log = structlog.get_logger("shopwatch.sources.syslog")

_TRIM = b"\r\n\x00"
_MAX_LEN_DIGITS = 10
_TCP = "syslog-tcp"

_OPEN_GAUGES: weakref.WeakKeyDictionary[CollectorRegistry, Gauge] = weakref.WeakKeyDictionary()


def _open_gauge(metrics: SourceMetrics) -> Gauge:
    """The open-connections gauge of ``metrics``' registry (made once per registry)."""
    gauge = _OPEN_GAUGES.get(metrics.registry)
    if gauge is None:
        gauge = Gauge(
            "shopwatch_sources_open_connections",
            "TCP connections open now.",
            ["source"],
            registry=metrics.registry,
        )
        _OPEN_GAUGES[metrics.registry] = gauge
    return gauge


@dataclass(slots=True, eq=False)
class _Conn:
    """One open TCP connection: who, since when silent, and its handler task."""

    peer: str
    task: asyncio.Task[Any]
    writer: asyncio.StreamWriter
    last_active: float = field(default_factory=time.monotonic)
    evicted: bool = False
    busy: bool = False  # handing messages over (waiting for queue room): never evicted then


class OctetOrLineFramer:
    """Split a TCP byte stream into syslog messages (RFC 6587, both framings).

    ``feed`` returns the complete messages so far; ``oversize`` counts those dropped for
    passing ``max_bytes`` (their bytes are skipped without being kept).

    >>> f = OctetOrLineFramer(100)
    >>> f.feed(b"11 <13>hello 1<13>a\\n<13>b")
    [b'<13>hello 1', b'<13>a']
    >>> f.feed(b"\\n"), f.close()
    ([b'<13>b'], [])
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.oversize = 0
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized octet-counted frame still to discard
        self._skip_line = False  # discarding an oversized line up to its newline

    def feed(self, data: bytes) -> list[bytes]:
        """Messages completed by ``data``."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        while buf:
            if self._skip:
                n = min(self._skip, len(buf))
                del buf[:n]
                self._skip -= n
                continue
            if self._skip_line:
                nl = buf.find(b"\n")
                if nl < 0:
                    buf.clear()
                    break
                del buf[: nl + 1]
                self._skip_line = False
                continue
            if buf[0] in _TRIM or buf[0] == 0x20:  # stray separators between frames
                del buf[:1]
                continue
            if 0x30 <= buf[0] <= 0x39:
                sp = buf.find(b" ", 0, _MAX_LEN_DIGITS + 1)
                if sp > 0 and buf[:sp].isdigit():
                    size = int(buf[:sp])
                    if size > self.max_bytes:
                        self.oversize += 1
                        del buf[: sp + 1]
                        self._skip = size
                        continue
                    if len(buf) < sp + 1 + size:
                        break  # wait for the rest of the frame
                    out.append(bytes(buf[sp + 1 : sp + 1 + size]).rstrip(_TRIM))
                    del buf[: sp + 1 + size]
                    continue
                if sp < 0 and len(buf) <= _MAX_LEN_DIGITS and bytes(buf).isdigit():
                    break  # maybe a length prefix still arriving
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > self.max_bytes:
                    self.oversize += 1
                    buf.clear()
                    self._skip_line = True
                break
            if nl > self.max_bytes:
                self.oversize += 1
            else:
                out.append(bytes(buf[:nl]).rstrip(_TRIM))
            del buf[: nl + 1]
        return out

    def close(self) -> list[bytes]:
        """The unterminated last message, if any, once the stream ended."""
        rest = bytes(self._buf).strip(_TRIM + b" ")
        self._buf.clear()
        if not rest or self._skip or self._skip_line:
            return []
        if len(rest) > self.max_bytes:
            self.oversize += 1
            return []
        return [rest]


class _Batcher:
    """Collects messages of one transport and hands them to the queue in chunks."""

    def __init__(
        self,
        name: str,
        out: ChunkQueue,
        metrics: SourceMetrics,
        *,
        batch_lines: int,
        flush_interval_s: float,
        max_pending_lines: int,
    ) -> None:
        self.name = name
        self.out = out
        self.metrics = metrics
        self.batch_lines = batch_lines
        self.flush_interval_s = flush_interval_s
        self.max_pending_lines = max_pending_lines
        self.lines: list[str] = []
        self.sent = 0  # messages handed to the queue (numbering)
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    def add_nowait(self, messages: Sequence[bytes]) -> None:
        """Add messages, dropping (and counting) what passes ``max_pending_lines``."""
        room = self.max_pending_lines - len(self.lines)
        if len(messages) > room:
            dropped = len(messages) - max(room, 0)
            self.metrics.dropped.labels(self.name, "queue_full").inc(dropped)
            log.warning("syslog_dropped", source=self.name, reason="queue_full", messages=dropped)
            messages = messages[: max(room, 0)]
        self._extend(messages)

    async def add(self, messages: Sequence[bytes], stopping: asyncio.Event) -> None:
        """Add messages, waiting while ``max_pending_lines`` are already waiting."""
        while len(self.lines) >= self.max_pending_lines and not stopping.is_set():
            self._room.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._room.wait(), 0.05)
        self._extend(messages)

    def _extend(self, messages: Sequence[bytes]) -> None:
        if not messages:
            return
        was_empty = not self.lines
        self.lines.extend(decode_line(m.rstrip(_TRIM)) for m in messages)
        if was_empty or len(self.lines) >= self.batch_lines:
            self._wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Flush by size or every ``flush_interval_s``, until stopping (then flush once more)."""
        while not stopping.is_set():
            if not self.lines:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 0.25)
                continue
            if len(self.lines) < self.batch_lines:
                with contextlib.suppress(TimeoutError):
                    self._wake.clear()
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            await self._flush(stopping)
        await self._flush(None)

    async def _flush(self, stopping: asyncio.Event | None) -> None:
        while self.lines:
            batch = self.lines[: self.batch_lines]
            chunk = RawChunk(self.name, "syslog", batch, self.sent + 1)
            if stopping is None:
                if not self.out.offer(chunk):
                    self.metrics.dropped.labels(self.name, "shutdown").inc(len(self.lines))
                    log.warning(
                        "syslog_dropped",
                        source=self.name,
                        reason="shutdown",
                        messages=len(self.lines),
                    )
                    self.lines.clear()
                    return
            elif not await self.out.put(chunk, stopping):
                return
            del self.lines[: len(batch)]
            self.sent += len(batch)
            self.metrics.lines.labels(self.name).inc(len(batch))
            self.metrics.chunks.labels(self.name).inc()
            self._room.set()


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, owner: SyslogSource) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._on_datagram(data)

    def error_received(self, exc: Exception) -> None:
        log.warning("syslog_udp_error", error=str(exc))


class SyslogSource:
    """UDP and TCP syslog listener on one host/port (see the module docstring)."""

    def __init__(
        self,
        out: ChunkQueue,
        *,
        host: str = "127.0.0.1",
        port: int = 5514,
        protocols: Sequence[Literal["udp", "tcp"]] = ("udp", "tcp"),
        max_message_bytes: int = 64 * 1024,
        max_connections: int = 256,
        max_connections_per_ip: int = 64,
        idle_timeout_s: float = 60.0,
        min_idle_to_evict_s: float = 1.0,
        batch_lines: int = 1000,
        flush_interval_s: float = 0.05,
        max_pending_lines: int = 20_000,
        name: str = "syslog",
        metrics: SourceMetrics | None = None,
    ) -> None:
        if not protocols or set(protocols) - {"udp", "tcp"}:
            raise ConfigError(f"syslog protocols must be udp and/or tcp, not {list(protocols)}")
        if max_message_bytes < 1 or max_connections < 1 or batch_lines < 1:
            raise ConfigError(
                "syslog max_message_bytes, max_connections and batch_lines must be positive"
            )
        if max_connections_per_ip < 1:
            raise ConfigError("syslog max_connections_per_ip must be positive")
        if not idle_timeout_s > 0 or not min_idle_to_evict_s >= 0:
            raise ConfigError(
                "syslog idle_timeout_s must be positive and min_idle_to_evict_s not negative"
            )
        self.name = name
        self.out = out
        self.host = host
        self.port = port
        self.protocols = tuple(protocols)
        self.max_message_bytes = max_message_bytes
        self.max_connections = max_connections
        self.max_connections_per_ip = max_connections_per_ip
        self.idle_timeout_s = idle_timeout_s
        self.min_idle_to_evict_s = min_idle_to_evict_s
        self.metrics = metrics or SourceMetrics()
        self._open = _open_gauge(self.metrics).labels(_TCP)
        self._batch_args = {
            "batch_lines": batch_lines,
            "flush_interval_s": flush_interval_s,
            "max_pending_lines": max_pending_lines,
        }
        self.udp_port: int | None = None
        self.tcp_port: int | None = None
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._batchers: dict[str, _Batcher] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: dict[asyncio.Task[Any], _Conn] = {}
        self._unlogged: dict[str, int] = {}  # refusals and evictions since the last log line
        self._logged_at = -1e9
        self._stopping = asyncio.Event()

    @classmethod
    def from_settings(
        cls, settings: SyslogSettings, out: ChunkQueue, metrics: SourceMetrics | None = None
    ) -> SyslogSource:
        """The listener described by ``settings.sources.syslog``."""
        return cls(
            out,
            host=settings.host,
            port=settings.port,
            protocols=settings.protocols,
            max_message_bytes=settings.max_message_bytes,
            max_connections=settings.max_connections,
            max_connections_per_ip=settings.max_connections_per_ip,
            idle_timeout_s=settings.idle_timeout_s,
            min_idle_to_evict_s=settings.min_idle_to_evict_s,
            metrics=metrics,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the sockets (port 0 picks free ones: see ``udp_port`` / ``tcp_port``)."""
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        try:
            if "udp" in self.protocols:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Udp(self), local_addr=(self.host, self.port)
                )
                self._udp = transport
                self.udp_port = transport.get_extra_info("sockname")[1]
                self._add_batcher("syslog-udp")
            if "tcp" in self.protocols:
                self._tcp = await asyncio.start_server(self._on_connection, self.host, self.port)
                self.tcp_port = self._tcp.sockets[0].getsockname()[1]
                self._add_batcher("syslog-tcp")
        except OSError as err:
            await self.stop()
            raise ConfigError(f"syslog cannot listen on {self.host}:{self.port}: {err}") from err
        log.info("syslog_listening", host=self.host, udp_port=self.udp_port, tcp_port=self.tcp_port)

    def _add_batcher(self, name: str) -> None:
        batcher = _Batcher(name, self.out, self.metrics, **self._batch_args)  # type: ignore[arg-type]
        self._batchers[name] = batcher
        self._tasks.append(asyncio.create_task(batcher.run(self._stopping), name=f"{name}-flush"))

    async def stop(self) -> None:
        """Close the sockets and connections, flush what was received, stop."""
        if self._udp is not None:
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            tasks = list(self._connections)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._tcp.wait_closed()
            self._tcp = None
        self._stopping.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def ack(self, token: Any) -> None:
        """Nothing to do: syslog has no way to re-send."""

    # -- input -----------------------------------------------------------------------

    def _oversize(self, name: str, count: int) -> None:
        self.metrics.dropped.labels(name, "oversize").inc(count)
        log.warning(
            "syslog_message_too_large", source=name, messages=count, limit=self.max_message_bytes
        )

    def _on_datagram(self, data: bytes) -> None:
        messages = [m for m in data.split(b"\n") if m.strip(_TRIM + b" ")]
        small = [m for m in messages if len(m.rstrip(_TRIM)) <= self.max_message_bytes]
        if len(small) < len(messages):
            self._oversize("syslog-udp", len(messages) - len(small))
        self._batchers["syslog-udp"].add_nowait(small)

    def _make_room(self, peer: str) -> bool:
        """Whether a newcomer from ``peer`` may stay; evicts a silent connection if needed."""
        limits = (
            (self.max_connections_per_ip, "per_ip", peer),
            (self.max_connections, "total", None),
        )
        for limit, reason, only in limits:
            pool = [
                c
                for c in self._connections.values()
                if not c.evicted and (only is None or c.peer == only)
            ]
            if len(pool) < limit:
                continue
            idle = [c for c in pool if not c.busy]
            oldest = min(idle, key=lambda c: c.last_active) if idle else None
            now = time.monotonic()
            if oldest is None or now - oldest.last_active < self.min_idle_to_evict_s:
                self._note_connection("refused", reason, peer)
                return False
            oldest.evicted = True
            oldest.task.cancel()
            self._note_connection("evicted", reason, oldest.peer)
        return True

    def _note_connection(self, outcome: str, reason: str, peer: str) -> None:
        """Count a refusal or eviction; log at most once a second (a flood is one line)."""
        self.metrics.connections.labels(_TCP, outcome).inc()
        self._unlogged[outcome] = self._unlogged.get(outcome, 0) + 1
        now = time.monotonic()
        if now - self._logged_at >= 1.0:
            log.warning(
                "syslog_connections_limited",
                last_reason=reason,
                last_peer=peer,
                limit=self.max_connections,
                per_ip_limit=self.max_connections_per_ip,
                **self._unlogged,
            )
            self._unlogged = {}
            self._logged_at = now

    async def _on_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        peername = writer.get_extra_info("peername")
        peer = str(peername[0]) if isinstance(peername, tuple) and peername else "-"
        if not self._make_room(peer):
            writer.close()
            return
        conn = _Conn(peer, task, writer)
        self._connections[task] = conn
        self._open.inc()
        self.metrics.connections.labels(_TCP, "accepted").inc()
        framer = OctetOrLineFramer(self.max_message_bytes)
        batcher = self._batchers[_TCP]
        try:
            while True:
                try:
                    data = await asyncio.wait_for(reader.read(64 * 1024), self.idle_timeout_s)
                except TimeoutError:
                    self.metrics.connections.labels(_TCP, "closed_idle").inc()
                    log.info("syslog_connection_idle", peer=peer, idle_s=self.idle_timeout_s)
                    data = b""
                conn.last_active = time.monotonic()
                messages = framer.feed(data) if data else framer.close()
                if framer.oversize:
                    self._oversize(_TCP, framer.oversize)
                    framer.oversize = 0
                conn.busy = True
                await batcher.add(messages, self._stopping)
                conn.busy = False
                conn.last_active = time.monotonic()
                if not data:
                    break
        except (ConnectionError, asyncio.IncompleteReadError) as err:
            log.info("syslog_connection_lost", error=str(err))
        except asyncio.CancelledError:
            if not conn.evicted:
                raise
            batcher.add_nowait(framer.close())  # an unterminated last message still counts
        finally:
            del self._connections[task]
            self._open.dec()
            writer.close()
