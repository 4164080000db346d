"""HTTP ingest: ``POST /ingest`` with NDJSON (ECS events), served by uvicorn on 127.0.0.1.

Answers, in the order they are checked:

- 421 for a ``Host`` header that is not localhost, a loopback address, the bound address
  or one of ``allowed_hosts`` (DNS rebinding, :mod:`shopwatch.hostcheck`), on every path.
- 503 while shutting down; 401 without ``Authorization: Bearer <token>`` or with a wrong
  one (compared in constant time); 415 for a ``Content-Type`` other than
  ``application/x-ndjson``, ``application/json`` or ``text/plain``, or a
  ``Content-Encoding`` other than ``gzip`` / ``identity``; 413 when the body (raw, or
  once gunzipped) passes ``max_body_bytes`` — checked while it streams in, so an
  oversized body is never held whole; 400 for a corrupt gzip stream.
- 413 when the body holds more than ``max_events_per_request`` non-blank lines (never
  more than the hand-off queue's ``max_lines``, so one request cannot pass the queue's
  bound); nothing of it is queued: split it into smaller requests.
- Then each non-blank line must be a JSON object, and the event the pipeline would make
  of it must be valid (``validate``, wired by the service to the ECS parser itself:
  ``@timestamp`` and ``event.dataset`` present, a timestamp it can read, ...). Good lines
  are queued as one ``RawChunk(format="ecs")``; the answer is
  ``{"accepted": n, "rejected": [{"line": i, "reason": ...}, ...]}`` (line numbers are
  1-based within the body, reasons ``invalid_json`` / ``not_an_object`` or the parser's,
  such as ``missing_field`` / ``bad_timestamp``; at most :data:`MAX_REJECTS_LISTED`
  listed, ``rejected_count`` has them all), with 200 when any line was accepted and 400
  when none was.
- 429 with ``Retry-After`` when the hand-off queue is full or the process is over its
  memory mark (checked before the body is read, and again before its events are queued),
  or when request bodies being read and checked at once would pass
  ``max_inflight_bytes`` (a body reserves its declared length, or ``max_body_bytes``
  when it is gzipped or has none, until it is answered): nothing of that request is
  queued, and the client should send it again.

200 means "queued for processing", not "processed": this source does not wait for acks.

Events without an ``event.id`` get ``<chunk source>:<n>``, where the chunk source is
``http-<8 hex digits>`` drawn anew for every source instance and ``n`` counts the events
it accepted, so assigned ids never repeat across requests or restarts.
``GET /health`` (no auth) and ``GET /metrics`` (Prometheus text, no auth; counters
``shopwatch_sources_*_total``) complete the app.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import secrets
import socket
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson
import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from shopwatch.config import HttpIngestSettings
from shopwatch.errors import ConfigError
from shopwatch.hostcheck import HostGuard
from shopwatch.sources.base import ChunkQueue, RawChunk, SourceMetrics, decode_line

__all__ = ["ACCEPTED_CONTENT_TYPES", "MAX_REJECTS_LISTED", "HttpSource", "Validate"]

log = structlog.get_logger("shopwatch.sources.http")

ACCEPTED_CONTENT_TYPES = frozenset({"application/x-ndjson", "application/json", "text/plain"})
MAX_REJECTS_LISTED = 1000
_RETRY_AFTER_S = "1"

#: Checks lines that are JSON objects the way the pipeline will: ``(index, reason)`` of
#: each line it would reject (index into the list it was given).
Validate = Callable[[list[str]], Sequence[tuple[int, str]]]


def _is_blank(line: str | bytes) -> bool:
    """Whether ``line`` holds nothing but ASCII whitespace.

    >>> _is_blank(" \\t\\r"), _is_blank(b""), _is_blank("\\u2028")
    (True, True, False)
    """
    if isinstance(line, bytes):
        return not line.strip(b" \t\r\f\v")
    return not line.strip(" \t\r\f\v")


def _loopback(host: str) -> bool:
    """Whether ``host`` (a bind address) is loopback only.

    >>> _loopback("127.0.0.1"), _loopback("localhost"), _loopback("0.0.0.0")
    (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _TooLarge(Exception):
    """The body passed the size limit while streaming in."""


class HttpSource:
    """The NDJSON ingest endpoint as a live source (see the module docstring)."""

    def __init__(
        self,
        out: ChunkQueue,
        *,
        token: str | None,
        host: str = "127.0.0.1",
        port: int = 8081,
        max_body_bytes: int = 8 * 1024 * 1024,
        max_inflight_bytes: int = 64 * 1024 * 1024,
        max_events_per_request: int = 50_000,
        validate: Validate | None = None,
        allowed_hosts: Sequence[str] = (),
        name: str = "http",
        metrics: SourceMetrics | None = None,
    ) -> None:
        if not token:
            raise ConfigError(
                "HTTP ingest needs a bearer token: set sources.http.token "
                "(SHOPWATCH_SOURCES__HTTP__TOKEN); there is no default"
            )
        if max_body_bytes < 1:
            raise ConfigError("sources.http.max_body_bytes must be positive")
        if max_events_per_request < 1:
            raise ConfigError("sources.http.max_events_per_request must be positive")
        self.name = name
        self.out = out
        self.host = host
        self.port = port
        self.max_body_bytes = max_body_bytes
        self.max_inflight_bytes = max_inflight_bytes
        self._inflight = 0  # bytes reserved by bodies being read and checked (event loop only)
        # One request is one chunk: it must fit the queue, which takes a chunk of any size
        # when empty.
        self.max_events_per_request = min(max_events_per_request, out.max_lines)
        self.validate = validate
        #: The chunks' source, unique per instance: assigned ids are ``<it>:<n>``.
        self.chunk_source = f"{name}-{secrets.token_hex(4)}"
        self.metrics = metrics or SourceMetrics()
        self._token = token.encode("utf-8")
        self._closing = False
        self._lines_seen = 0
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.allowed_hosts = tuple(allowed_hosts)
        self.app = Starlette(
            routes=[
                Route("/ingest", self._ingest, methods=["POST"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/metrics", self._metrics, methods=["GET"]),
            ]
        )

    @classmethod
    def from_settings(
        cls,
        settings: HttpIngestSettings,
        out: ChunkQueue,
        metrics: SourceMetrics | None = None,
        *,
        validate: Validate | None = None,
    ) -> HttpSource:
        """The endpoint described by ``settings.sources.http``."""
        return cls(
            out,
            token=settings.token.get_secret_value() if settings.token else None,
            host=settings.host,
            port=settings.port,
            max_body_bytes=settings.max_body_bytes,
            max_inflight_bytes=settings.max_inflight_bytes,
            max_events_per_request=settings.max_events_per_request,
            validate=validate,
            allowed_hosts=settings.allowed_hosts,
            metrics=metrics,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind the socket (``port`` 0 picks a free one, see :attr:`port`) and serve."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as err:
            sock.close()
            raise ConfigError(
                f"HTTP ingest cannot listen on {self.host}:{self.port}: {err}"
            ) from err
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        # Bound to loopback, the Host check stops a rebinding page from reaching the listener's
        # open routes. Bound for remote shippers, they call it by any name (a compose
        # service, a load balancer); every ingest route needs the bearer token, which a
        # rebinding page cannot have, so the check would refuse shippers and guard nothing.
        served = (
            HostGuard(self.app, self.host, self.allowed_hosts, setting="sources.http.allowed_hosts")
            if _loopback(self.host)
            else self.app
        )
        config = uvicorn.Config(
            served,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=5,
            server_header=False,
        )
        self._server = uvicorn.Server(config)
        self._closing = False
        self._task = asyncio.create_task(
            self._server.serve(sockets=[sock]), name=f"{self.name}-serve"
        )
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises the startup failure
                raise ConfigError(f"HTTP ingest on {self.host}:{self.port} stopped at start")
            await asyncio.sleep(0.01)
        log.info("http_ingest_listening", host=self.host, port=self.port)

    def begin_shutdown(self) -> None:
        """Answer 503 to ingest (and /health) from now on; the server keeps running.

        ``stop`` calls it first; call it earlier from any thread to refuse new input while
        the pipeline drains.
        """
        self._closing = True

    async def stop(self) -> None:
        """Answer 503 from now on, finish in-flight requests and close the server."""
        self.begin_shutdown()
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
        self._server = None
        self._task = None

    def ack(self, token: Any) -> None:
        """Nothing to do: ingest answers once lines are queued."""

    # -- endpoints -------------------------------------------------------------------

    def _answer(
        self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> Response:
        self.metrics.requests.labels(str(status)).inc()
        return JSONResponse(body, status_code=status, headers=headers)

    async def _health(self, request: Request) -> Response:
        status = 503 if self._closing else 200
        return JSONResponse(
            {"status": "closing" if self._closing else "ok", "queued_lines": self.out.lines},
            status_code=status,
        )

    async def _metrics(self, request: Request) -> Response:
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def _authorized(self, request: Request) -> bool:
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8"), self._token)

    async def _ingest(self, request: Request) -> Response:
        if self._closing:
            return self._answer(503, {"error": "shutting down"}, {"Retry-After": _RETRY_AFTER_S})
        if not self._authorized(request):
            return self._answer(
                401, {"error": "missing or wrong bearer token"}, {"WWW-Authenticate": "Bearer"}
            )
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media not in ACCEPTED_CONTENT_TYPES:
            return self._answer(
                415, {"error": f"content type must be one of {sorted(ACCEPTED_CONTENT_TYPES)}"}
            )
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            return self._answer(415, {"error": "content encoding must be gzip or identity"})
        declared = request.headers.get("content-length")
        length = int(declared) if declared is not None and declared.isdigit() else None
        if length is not None and length > self.max_body_bytes:
            return self._too_large()
        bound = self.out.refusal()
        if bound is not None:  # answered before the body is read: a flood costs little
            return self._busy(bound)
        gzip = encoding == "gzip"
        reserve = self.max_body_bytes if gzip or length is None else length
        if self._inflight and self._inflight + reserve > self.max_inflight_bytes:
            return self._busy("inflight")
        self._inflight += reserve
        try:
            try:
                body = await self._read_body(request, gzip=gzip)
            except _TooLarge:
                return self._too_large()
            except zlib.error:
                return self._answer(400, {"error": "body is not a valid gzip stream"})
            # Decoding and validating a large body takes a while: off the sources' event loop.
            sorted_lines = await asyncio.to_thread(self._sort, body)
            del body
            if sorted_lines is None:
                return self._too_many()
            return self._accept(*sorted_lines)
        finally:
            self._inflight -= reserve

    def _busy(self, bound: str) -> Response:
        """429 before reading the body: the queue, the memory mark or in-flight bodies are full."""
        self.metrics.busy.labels(bound).inc()
        return self._answer(
            429,
            {"error": f"ingest is busy ({bound}); retry later"},
            {"Retry-After": _RETRY_AFTER_S},
        )

    def _too_large(self) -> Response:
        log.warning("http_body_too_large", limit=self.max_body_bytes)
        return self._answer(413, {"error": f"body larger than {self.max_body_bytes} bytes"})

    def _too_many(self) -> Response:
        limit = self.max_events_per_request
        self.metrics.rejected.labels(self.name, "too_many_events").inc()
        log.warning("http_too_many_events", limit=limit)
        return self._answer(
            413,
            {
                "error": f"more than {limit} events in one request; nothing was queued: "
                f"send at most {limit} per request",
                "max_events_per_request": limit,
            },
        )

    async def _read_body(self, request: Request, *, gzip: bool) -> bytes:
        """The (gunzipped) body, read piece by piece; raises _TooLarge past the limit."""
        limit = self.max_body_bytes
        parts: list[bytes] = []
        raw_size = 0
        size = 0
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzip else None
        async for piece in request.stream():
            raw_size += len(piece)
            if raw_size > limit:
                raise _TooLarge
            if inflate is not None:
                # Never inflate more than the room left (+1 to notice the overflow).
                piece = inflate.decompress(piece, limit - size + 1)
                if inflate.unconsumed_tail:
                    raise _TooLarge
            size += len(piece)
            if size > limit:
                raise _TooLarge
            parts.append(piece)
        if inflate is not None:
            tail = inflate.flush()
            size += len(tail)
            if size > limit:
                raise _TooLarge
            parts.append(tail)
            if not inflate.eof:
                raise zlib.error("truncated gzip stream")
        return b"".join(parts)

    def _sort(self, body: bytes) -> tuple[list[str], list[tuple[int, str]]] | None:
        """Good lines, and (line number, reason) of bad ones; None past the events limit.

        Only ASCII whitespace makes a line blank (skipped): anything else is an event or a
        reject, never dropped unseen.
        """
        good: list[str] = []
        try:  # one decode for the whole body; lines that are not UTF-8 fail orjson anyway
            lines: list[str | bytes] = list(body.decode("utf-8").split("\n"))
        except UnicodeDecodeError:
            lines = list(body.split(b"\n"))
        if len(lines) > self.max_events_per_request:
            events = sum(1 for raw in lines if not _is_blank(raw))
            if events > self.max_events_per_request:
                return None
        bad: list[tuple[int, str]] = []
        good_at: list[int] = []  # the body line number of each good line
        for i, raw in enumerate(lines, start=1):
            if _is_blank(raw):
                continue
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                bad.append((i, "invalid_json"))
                continue
            if not isinstance(value, dict):
                bad.append((i, "not_an_object"))
                continue
            good.append(raw.rstrip("\r") if isinstance(raw, str) else decode_line(raw))
            good_at.append(i)
        if good and self.validate is not None:
            try:
                verdicts = self.validate(good)
            except Exception:  # the pipeline parses (and counts) them again anyway
                log.exception("http_validate_failed", lines=len(good))
                verdicts = []
            refused = {k: reason for k, reason in verdicts if 0 <= k < len(good)}
            if refused:
                bad.extend((good_at[k], reason) for k, reason in refused.items())
                bad.sort()
                good = [line for k, line in enumerate(good) if k not in refused]
        return good, bad

    def _accept(self, good: list[str], bad: list[tuple[int, str]]) -> Response:
        rejected: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for i, reason in bad:
            counts[reason] = counts.get(reason, 0) + 1
            if len(rejected) < MAX_REJECTS_LISTED:
                rejected.append({"line": i, "reason": reason})
        n_rejected = len(bad)
        if good:
            chunk = RawChunk(self.chunk_source, "ecs", good, self._lines_seen + 1)
            if not self.out.offer(chunk):
                self.metrics.dropped.labels(self.name, "queue_full").inc(len(good))
                log.warning("http_ingest_refused", reason="queue_full", lines=len(good))
                return self._answer(
                    429,
                    {"error": "ingest queue is full; retry later"},
                    {"Retry-After": _RETRY_AFTER_S},
                )
            self._lines_seen += len(good)
            self.metrics.lines.labels(self.name).inc(len(good))
            self.metrics.chunks.labels(self.name).inc()
        for reason, n in counts.items():
            self.metrics.rejected.labels(self.name, reason).inc(n)
        if n_rejected:
            log.info("http_lines_rejected", accepted=len(good), rejected=n_rejected, reasons=counts)
        payload = {"accepted": len(good), "rejected": rejected, "rejected_count": n_rejected}
        return self._answer(200 if good else 400, payload)
