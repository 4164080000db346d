"""Refuse HTTP requests whose ``Host`` is not this server's name (DNS rebinding).

A web page on ``evil.example`` can point its own name at 127.0.0.1 and then make the
analyst's browser talk to a shopwatch bound there; the request then carries
``Host: evil.example``. Only names that mean this server are served: ``localhost``, the
loopback addresses, the bound address, and names given in the settings. Bound to every
interface (``0.0.0.0``), any IP literal is served too (a rebinding attack needs a name),
as are the machine's own host names.

Shared by the web UI and HTTP ingest; it imports nothing of either.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable

import orjson
import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

log = structlog.get_logger("shopwatch.hostcheck")
#: Refusals are logged at most this often, with the count since the last line.
_LOG_EVERY_S = 10.0

__all__ = ["HostGuard", "allowed_hosts", "host_of"]

_LOOPBACK = ("localhost", "127.0.0.1", "::1")
_WILDCARD = frozenset({"0.0.0.0", "::", "", "*"})


def host_of(header: str) -> str:
    """The host name of a ``Host`` header value, without port or brackets, lower case.

    >>> host_of("LocalHost:8080"), host_of("[::1]:8080"), host_of("127.0.0.1")
    ('localhost', '::1', '127.0.0.1')
    """
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def allowed_hosts(bind_host: str, extra: Iterable[str] = ()) -> tuple[frozenset[str], bool]:
    """Names served for a server bound to ``bind_host``, and whether any IP literal is too.

    >>> sorted(allowed_hosts("127.0.0.1", ["shopwatch.internal"])[0])
    ['127.0.0.1', '::1', 'localhost', 'shopwatch.internal']
    """
    names = {*_LOOPBACK, *(host_of(e) for e in extra if e.strip())}
    bound = host_of(bind_host)
    wildcard = bound in _WILDCARD
    if wildcard:
        names |= {n.lower() for n in (socket.gethostname(), socket.getfqdn()) if n}
    else:
        names.add(bound)
    return frozenset(names), wildcard


class HostGuard:
    """ASGI middleware: 421 for a request whose ``Host`` is not served (see the module)."""

    def __init__(
        self,
        app: ASGIApp,
        bind_host: str,
        extra: Iterable[str] = (),
        *,
        setting: str = "allowed_hosts",
    ) -> None:
        self.app = app
        self.names, self.any_ip = allowed_hosts(bind_host, extra)
        self.setting = setting  # the settings key that allows more names, for the message
        self.refused = 0
        self._logged_at = 0.0
        self._unlogged = 0

    def _note(self, header: str | None) -> None:
        self.refused += 1
        self._unlogged += 1
        now = time.monotonic()
        if now - self._logged_at >= _LOG_EVERY_S:
            log.warning("host_refused", host=header, refused=self._unlogged, setting=self.setting)
            self._logged_at, self._unlogged = now, 0

    def allows(self, header: str | None) -> bool:
        """Whether a request with this ``Host`` header value is served."""
        if not header:
            return False
        name = host_of(header)
        return name in self.names or (self.any_ip and _is_ip(name))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = None
        for key, value in scope.get("headers", []):
            if key == b"host":
                header = value.decode("latin-1")
                break
        if self.allows(header):
            await self.app(scope, receive, send)
            return
        self._note(header)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = orjson.dumps(
            {
                "error": f"host {header!r} is not served here; to serve it, add the name to "
                f"{self.setting} in the settings (a reverse proxy's public name, for example)"
            }
        )
        await send(
            {
                "type": "http.response.start",
                "status": 421,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"cache-control", b"no-store"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
