"""Outgoing HTTP that a remote party cannot steer: credentials to one origin, public addresses.

A feed's documents name further URLs (a MISP manifest's event files, a TAXII discovery
document's API roots, collection ids, redirects). Every request a feed makes goes through
:class:`GuardedTransport`, one request (and one redirect hop) at a time:

- **Credentials only to the configured origin** (scheme, host and port). The feed's
  ``Authorization`` and extra headers are added by the transport, and only to requests
  for that origin. A feed that carries credentials refuses any request to another origin
  (:class:`RequestRefused` with reason ``cross_origin``): a feed sending us elsewhere is
  either misconfigured or hostile, and fetching without credentials would only fail
  later. A feed without credentials may follow links and redirects anywhere public.
- **Public addresses only.** The address checked is the peer of the socket actually
  connected (after the resolver, the happy-eyeballs choice and any DNS rebinding), never
  an earlier lookup: a private, loopback, link-local, shared, multicast, reserved or
  unspecified peer (IPv4-mapped IPv6 included) is refused with reason
  ``blocked_address`` before a byte of the request is sent. ``allow_private_origin``
  exempts the configured origin (an internal mirror), ``allow_private`` every origin.
- Environment proxies are not used (a proxy would hide the peer address).
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Iterable, Mapping
from typing import Any, Final

import httpcore
import httpx

from shopwatch.errors import ShopwatchError

__all__ = [
    "REFUSAL_REASONS",
    "GuardedTransport",
    "RequestRefused",
    "is_public_address",
    "origin_of",
]

#: Why a request was refused (small fixed set: a metric label).
REFUSAL_REASONS: Final[tuple[str, ...]] = ("cross_origin", "blocked_address")

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


class RequestRefused(ShopwatchError):
    """Raised when an outgoing request would leave the configured origin with credentials,
    or would connect to a non-public address that the config does not allow."""

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)


def origin_of(url: httpx.URL | str) -> Origin:
    """``(scheme, host, port)`` of ``url``, the port filled in from the scheme.

    >>> origin_of("https://Feeds.Example/x")
    ('https', 'feeds.example', 443)
    """
    parsed = httpx.URL(url) if isinstance(url, str) else url
    scheme = parsed.scheme.lower()
    return scheme, parsed.host.lower(), parsed.port or _DEFAULT_PORTS.get(scheme, 0)


def _show(origin: Origin) -> str:
    scheme, host, port = origin
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}:{port}"


def is_public_address(text: str) -> bool:
    """Whether ``text`` is a globally routable unicast address.

    >>> [is_public_address(a) for a in ("93.184.216.34", "127.0.0.1", "169.254.169.254")]
    [True, False, False]
    >>> [is_public_address(a) for a in ("::ffff:10.0.0.1", "100.64.0.1", "fe80::1")]
    [False, False, False]
    """
    try:
        addr = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped or addr.sixtofour
        if mapped is not None:
            return is_public_address(str(mapped))
    return addr.is_global and not addr.is_multicast


class _CheckedBackend(httpcore.SyncBackend):
    """Connects, then refuses the stream when its peer address is not allowed."""

    def __init__(self, exempt: frozenset[tuple[str, int]], allow_all: bool) -> None:
        self._exempt = exempt
        self._allow_all = allow_all

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = super().connect_tcp(host, port, timeout, local_address, socket_options)
        if self._allow_all or (host.lower(), port) in self._exempt:
            return stream
        sock = stream.get_extra_info("socket")
        peer = str(sock.getpeername()[0]) if sock is not None else ""
        if not is_public_address(peer):
            stream.close()
            raise RequestRefused(
                "blocked_address",
                f"{host}:{port} is {peer or 'an unknown address'}, a private, loopback or "
                "link-local address; allow it with allow_private on the feed (its own "
                "origin) or intel.allow_private_networks",
            )
        return stream

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise RequestRefused("blocked_address", "unix sockets are not reachable from a feed")


class _CheckedHTTP(httpx.HTTPTransport):
    def __init__(self, backend: _CheckedBackend, verify: ssl.SSLContext | bool = True) -> None:
        super().__init__(trust_env=False)
        # The one change to httpx's own transport: a pool whose connections are checked.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=10,
            keepalive_expiry=5.0,
            network_backend=backend,
        )


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport for one feed (see the module docstring for the rules).

    ``origin_url`` is the configured URL; ``credentials`` are headers sent to its origin
    only. ``inner`` replaces the network transport (the address check is then the inner
    transport's business).
    """

    def __init__(
        self,
        origin_url: str,
        *,
        credentials: Mapping[str, str] | None = None,
        allow_private_origin: bool = False,
        allow_private: bool = False,
        inner: httpx.BaseTransport | None = None,
    ) -> None:
        self.origin = origin_of(origin_url)
        self._credentials = dict(credentials or {})
        _, host, port = self.origin
        exempt = frozenset({(host, port)}) if allow_private_origin else frozenset()
        self._inner = inner or _CheckedHTTP(_CheckedBackend(exempt, allow_private))

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` with the credentials when it is for the origin; refuse otherwise."""
        target = origin_of(request.url)
        for name in ("Authorization", "Proxy-Authorization", *self._credentials):
            request.headers.pop(name, None)  # only this transport adds credentials
        if target == self.origin:
            request.headers.update(self._credentials)
        elif self._credentials:
            raise RequestRefused(
                "cross_origin",
                f"refused {_show(target)}{request.url.path}: it is not the configured origin "
                f"{_show(self.origin)}, and this feed's credentials go to that origin only",
            )
        return self._inner.handle_request(request)

    def close(self) -> None:
        """Close the connections of the inner transport."""
        self._inner.close()
