"""serve(): uvicorn in a background thread on 127.0.0.1, a free port with port 0."""

from __future__ import annotations

import socket

import httpx
import pytest
from starlette.applications import Starlette

from shopwatch.errors import ConfigError
from shopwatch.web import serve
from tests.web.conftest import TOKEN


def test_serve_on_a_free_port_and_stop(app: Starlette) -> None:
    server = serve(app, host="127.0.0.1", port=0)
    try:
        assert server.port > 0
        assert server.url == f"http://127.0.0.1:{server.port}"
        with httpx.Client(base_url=server.url, timeout=5) as client:
            assert client.get("/health").json() == {"status": "ok"}
            assert client.get("/api/alerts").status_code == 401
            alerts = client.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
            assert alerts.status_code == 200 and len(alerts.json()) == 8
            assert "server" not in alerts.headers
            assert (
                client.get("/static/app.js")
                .headers["content-type"]
                .startswith(("text/javascript", "application/javascript"))
            )
    finally:
        server.stop()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.url}/health", timeout=2)


def test_serve_on_a_taken_port_is_a_config_error(app: Starlette) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(app, port=port)
