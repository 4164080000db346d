"""A refused Host names the setting that serves it; ingest for remote shippers has no Host check."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from shopwatch.hostcheck import HostGuard
from shopwatch.sources.http import _loopback


def _app() -> Starlette:
    return Starlette(routes=[Route("/", lambda _: PlainTextResponse("ok"))])


def test_a_refusal_names_the_setting_and_is_counted() -> None:
    guard = HostGuard(_app(), "127.0.0.1", setting="web.allowed_hosts")
    with TestClient(guard, base_url="http://shop.example.com") as client:
        resp = client.get("/")
    assert resp.status_code == 421
    assert "web.allowed_hosts" in resp.json()["error"]
    assert guard.refused == 1
    with TestClient(guard, base_url="http://localhost") as client:
        assert client.get("/").status_code == 200
    assert guard.refused == 1


def test_only_a_loopback_ingest_listener_checks_the_host() -> None:
    assert _loopback("127.0.0.1") and _loopback("::1") and _loopback("localhost")
    assert not _loopback("0.0.0.0") and not _loopback("10.0.0.5") and not _loopback("shop-1")
