"""DNS rebinding: the web UI and API answer only requests that name this server as Host."""

from __future__ import annotations

import httpx
import pytest
from starlette.applications import Starlette

from shopwatch.hostcheck import HostGuard
from shopwatch.web import serve
from tests.web.conftest import TOKEN

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.mark.parametrize("path", ["/health", "/login", "/api/alerts", "/", "/metrics"])
def test_a_foreign_host_is_refused_on_every_path(app: Starlette, path: str) -> None:
    server = serve(app, host="127.0.0.1", port=0)
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            resp = client.get(path, headers={**AUTH, "Host": f"rebind.example:{server.port}"})
            assert resp.status_code == 421
            assert "rebind.example" in resp.json()["error"]
            assert client.get(path, headers=AUTH).status_code in (200, 303)  # Host 127.0.0.1
            local = client.get(path, headers={**AUTH, "Host": f"localhost:{server.port}"})
            assert local.status_code in (200, 303)
    finally:
        server.stop()


def test_configured_names_are_served(app: Starlette) -> None:
    server = serve(app, host="127.0.0.1", port=0, allowed_hosts=["shopwatch.internal"])
    try:
        with httpx.Client(base_url=server.url, timeout=5) as client:
            ok = client.get("/health", headers={"Host": "shopwatch.internal"})
            assert ok.status_code == 200
            assert client.get("/health", headers={"Host": "other.internal"}).status_code == 421
    finally:
        server.stop()


def test_which_hosts_are_allowed() -> None:
    async def app(scope: object, receive: object, send: object) -> None:  # never called
        raise AssertionError

    loop = HostGuard(app, "127.0.0.1")
    assert loop.allows("127.0.0.1:8080") and loop.allows("LOCALHOST") and loop.allows("[::1]:80")
    assert not loop.allows("10.0.0.5:8080")  # bound to loopback: no other address
    assert not loop.allows("127.0.0.1.rebind.example")
    assert not loop.allows(None) and not loop.allows("")
    everywhere = HostGuard(app, "0.0.0.0")
    assert everywhere.allows("10.0.0.5:8080") and everywhere.allows("[fe80::1]:8080")
    assert not everywhere.allows("rebind.example")
