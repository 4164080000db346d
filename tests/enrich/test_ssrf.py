"""Feed credentials go to the configured origin only; loopback and private addresses are refused.

Two real HTTP servers on 127.0.0.1: the feed's configured origin ``A`` and another origin
``B`` (another port: scheme + host + port differ, so it is another origin). ``B`` stands for
the internal service a hostile feed would point shopwatch at; each test checks what ``B``
received, in particular no ``Authorization`` header.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from shopwatch.config import IntelSettings, Settings
from shopwatch.enrich.schedule import FeedConfig, FeedManager

EVENT_UUID = "5a3f9c1e-1b2d-4e5f-8a9b-0c1d2e3f4a5b"
EVENT = {
    "Event": {
        "info": "C2",
        "Attribute": [
            {"type": "ip-dst", "value": f"203.0.113.{n}", "to_ids": True} for n in (7, 8, 9)
        ],
    }
}
TOKEN = "tok-0123456789-feed-secret"
TAXII = "application/taxii+json;version=2.1"


@dataclass
class Route:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    routes: dict[str, Route]
    requests: list[dict[str, str]]

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Server

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_GET(self) -> None:
        self.server.requests.append(
            {"path": self.path, **{k.lower(): v for k, v in self.headers.items()}}
        )
        route = self.server.routes.get(self.path.split("?", 1)[0], Route(404, b"not found"))
        self.send_response(route.status)
        for key, value in route.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(route.body)


def _serve() -> contextlib.AbstractContextManager[Server]:
    @contextlib.contextmanager
    def run() -> Iterator[Server]:
        httpd = Server(("127.0.0.1", 0), Handler)
        httpd.routes, httpd.requests = {}, []
        thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        try:
            yield httpd
        finally:
            httpd.shutdown()
            httpd.server_close()

    return run()


@pytest.fixture()
def a() -> Iterator[Server]:
    with _serve() as httpd:
        yield httpd


@pytest.fixture()
def b() -> Iterator[Server]:
    with _serve() as httpd:
        yield httpd


def _json(data: Any, media: str = "application/json") -> Route:
    return Route(200, json.dumps(data).encode(), {"Content-Type": media})


def _manager(*feeds: FeedConfig, allow_private_networks: bool = False) -> FeedManager:
    return FeedManager(
        list(feeds),
        clock=lambda: datetime(2026, 3, 14, 12, 0, tzinfo=UTC),
        allow_private_networks=allow_private_networks,
    )


def _status(manager: FeedManager) -> dict[str, Any]:
    return manager.status()[0].to_dict()


def _errors(manager: FeedManager, reason: str) -> float:
    name = manager.feeds[0].name
    value = manager.metrics.registry.get_sample_value(
        "shopwatch_enrich_feed_errors_total", {"feed": name, "reason": reason}
    )
    return value or 0.0


def _misp(a: Server, **kw: Any) -> FeedConfig:
    return FeedConfig(
        name="misp",
        url=f"{a.base}/misp/manifest.json",
        format="misp",
        timeout="3s",
        allow_private=True,
        **kw,
    )


def test_a_manifest_key_cannot_aim_the_feed_at_another_origin(a: Server, b: Server) -> None:
    hostile = f"{b.base}/admin/steal"
    a.routes["/misp/manifest.json"] = _json(
        {EVENT_UUID: {"info": "C2"}, hostile: {"info": "x"}, "../../admin": {"info": "y"}}
    )
    a.routes[f"/misp/{EVENT_UUID}.json"] = _json(EVENT)
    manager = _manager(_misp(a, token=TOKEN))
    manager.refresh()
    assert b.requests == []  # nothing at all reached the other origin
    assert [r["path"] for r in a.requests] == ["/misp/manifest.json", f"/misp/{EVENT_UUID}.json"]
    status = _status(manager)
    assert status["entries"] == 3 and status["last_error"] is None
    assert status["rejected"] == 2  # the two keys that are not event uuids
    assert all(r["authorization"] == f"Bearer {TOKEN}" for r in a.requests)


def test_a_redirect_to_another_origin_gets_no_credentials(a: Server, b: Server) -> None:
    a.routes["/misp/manifest.json"] = _json({EVENT_UUID: {"info": "C2"}})
    a.routes[f"/misp/{EVENT_UUID}.json"] = Route(302, b"", {"Location": f"{b.base}/grab"})
    b.routes["/grab"] = _json(EVENT)
    manager = _manager(_misp(a, token=TOKEN), allow_private_networks=True)
    manager.refresh()
    assert b.requests == []  # refused before connecting: the feed carries credentials
    status = _status(manager)
    assert status["last_error_reason"] == "cross_origin"
    assert b.base in status["last_error"] and TOKEN not in status["last_error"]
    assert _errors(manager, "cross_origin") == 1


def test_a_feed_without_credentials_follows_a_redirect_to_a_public_origin(
    a: Server, b: Server
) -> None:
    # with every private address allowed, B stands for a public mirror: followed, no secrets
    a.routes["/drop.txt"] = Route(302, b"", {"Location": f"{b.base}/mirror/drop.txt"})
    b.routes["/mirror/drop.txt"] = Route(200, b"198.51.100.0/24 ; SBL1\n")
    feed = FeedConfig(name="drop", url=f"{a.base}/drop.txt", format="spamhaus", timeout="3s")
    manager = _manager(feed, allow_private_networks=True)
    manager.refresh()
    assert _status(manager)["entries"] == 1
    assert [r["path"] for r in b.requests] == ["/mirror/drop.txt"]
    assert "authorization" not in b.requests[0]


def test_a_redirect_into_a_private_address_is_refused(a: Server, b: Server) -> None:
    # allow_private covers the configured origin only: B (loopback, another port) is refused
    a.routes["/drop.txt"] = Route(302, b"", {"Location": f"{b.base}/internal"})
    b.routes["/internal"] = Route(200, b"198.51.100.0/24\n")
    feed = FeedConfig(
        name="drop", url=f"{a.base}/drop.txt", format="spamhaus", timeout="3s", allow_private=True
    )
    manager = _manager(feed)
    manager.refresh()
    assert b.requests == []  # connected, found loopback, closed before sending a request
    status = _status(manager)
    assert status["last_error_reason"] == "blocked_address"
    assert "127.0.0.1" in status["last_error"] and "allow_private" in status["last_error"]
    assert _errors(manager, "blocked_address") == 1


def test_a_loopback_feed_is_refused_unless_allowed(a: Server) -> None:
    a.routes["/drop.txt"] = Route(200, b"198.51.100.0/24\n")
    feed = FeedConfig(name="drop", url=f"{a.base}/drop.txt", format="spamhaus", timeout="3s")
    manager = _manager(feed)
    manager.refresh()
    assert a.requests == []
    assert _status(manager)["last_error_reason"] == "blocked_address"
    allowed = _manager(feed.model_copy(update={"allow_private": True}))
    allowed.refresh()
    assert _status(allowed)["entries"] == 1 and len(a.requests) == 1


def test_the_connected_address_is_checked_not_an_earlier_answer(
    a: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a rebinding name: whatever a resolver said before, the socket's peer is what counts
    real = socket.getaddrinfo

    def rebinding(host: Any, *args: Any, **kw: Any) -> Any:
        return real("127.0.0.1" if host == "feeds.rebind.test" else host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    a.routes["/drop.txt"] = Route(200, b"198.51.100.0/24\n")
    port = a.server_address[1]
    feed = FeedConfig(
        name="drop", url=f"http://feeds.rebind.test:{port}/drop.txt", format="spamhaus"
    )
    manager = _manager(feed)
    manager.refresh()
    assert a.requests == []
    assert _status(manager)["last_error_reason"] == "blocked_address"


def test_a_taxii_api_root_on_another_origin_gets_no_credentials(a: Server, b: Server) -> None:
    a.routes["/taxii2/"] = _json(
        {"title": "x", "default": f"{b.base}/api1/", "api_roots": [f"{b.base}/api1/"]}, TAXII
    )
    b.routes["/api1/"] = _json({"title": "root"}, TAXII)
    feed = FeedConfig(
        name="isac",
        url=f"{a.base}/taxii2/",
        format="taxii",
        username="analyst",  # type: ignore[arg-type]
        password="taxii-pass-1234",  # type: ignore[arg-type]
        timeout="3s",
        allow_private=True,
    )
    manager = _manager(feed, allow_private_networks=True)
    manager.refresh()
    assert b.requests == []
    assert "authorization" in a.requests[0]
    assert _status(manager)["last_error_reason"] == "cross_origin"


def test_the_allowance_is_a_setting(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        intel={"builtin": False, "allow_private_networks": True, "feeds": []},  # type: ignore[arg-type]
    )
    assert isinstance(settings.intel, IntelSettings)
    assert FeedManager.from_settings(settings).allow_private_networks is True
