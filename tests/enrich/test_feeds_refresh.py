"""Feed loading and refresh against a feed server on 127.0.0.1: 200+ETag, 304, 500, slow, garbage."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
from pydantic import SecretStr, ValidationError

from shopwatch.config import Settings
from shopwatch.enrich.intel import IntelEnricher
from shopwatch.enrich.schedule import (
    FeedConfig,
    FeedManager,
    IntelSettings,
    load_feed_configs,
    read_status,
)
from shopwatch.errors import ConfigError, ContentError

INTEL = "threat-intel"


@dataclass
class Script:
    """What the feed server answers next, and what it was asked."""

    body: bytes = b""
    etag: str = '"v1"'
    modes: list[str] = field(default_factory=list)  # consumed one per request; "ok" when empty
    requests: list[dict[str, str]] = field(default_factory=list)
    files: dict[str, bytes] = field(default_factory=dict)


class FeedServer(ThreadingHTTPServer):
    daemon_threads = True
    script: Script


class Handler(BaseHTTPRequestHandler):
    server: FeedServer

    def log_message(self, format: str, *args: object) -> None:  # keep test output clean
        return

    def do_GET(self) -> None:
        script = self.server.script
        script.requests.append(
            {"path": self.path, **{k.lower(): v for k, v in self.headers.items()}}
        )
        mode = script.modes.pop(0) if script.modes else "ok"
        if self.path.rsplit("/", 1)[-1] in script.files:
            self._send(
                200,
                script.files[self.path.rsplit("/", 1)[-1]],
                {"Content-Type": "application/json"},
            )
            return
        if mode == "error":
            self._send(500, b"internal error", {})
        elif mode == "slow":
            time.sleep(1.0)  # well past the feed's 300 ms timeout
            self._send(200, script.body, {"ETag": script.etag})
        elif mode == "garbage":
            self._send(
                200, b"<html><body>\n<h1>Maintenance</h1>\n<p>Back soon</p>\n</body></html>\n", {}
            )
        elif self.headers.get("If-None-Match") == script.etag:
            self._send(304, b"", {"ETag": script.etag})
        else:
            headers = {"ETag": script.etag, "Last-Modified": "Fri, 17 Jan 2025 17:03:47 GMT"}
            self._send(200, script.body, headers)

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != 304:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[FeedServer]:
    httpd = FeedServer(("127.0.0.1", 0), Handler)
    httpd.script = Script()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def _url(httpd: FeedServer, path: str = "/drop.txt") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


class Clock:
    """A settable wall clock."""

    def __init__(self) -> None:
        self.now = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


def _errors(manager: FeedManager, feed: str, reason: str) -> float:
    value = manager.metrics.registry.get_sample_value(
        "shopwatch_enrich_feed_errors_total", {"feed": feed, "reason": reason}
    )
    return value or 0.0


def _status(manager: FeedManager, name: str) -> dict[str, object]:
    return next(s.to_dict() for s in manager.status() if s.name == name)


def test_http_feed_keeps_its_last_good_content(
    server: FeedServer, datasets: Path, tmp_path: Path
) -> None:
    drop = (datasets / INTEL / "spamhaus_drop.txt").read_bytes()
    server.script.body = drop
    clock = Clock()
    feed = FeedConfig(
        name="drop",
        url=_url(server),
        format="spamhaus",
        confidence=85,
        timeout="300ms",
        ttl="2d",
        allow_private=True,  # the test server is on loopback
    )
    manager = FeedManager([feed], clock=clock, state_dir=tmp_path / "intel")
    enricher = IntelEnricher(lambda: manager.index)
    probe = pl.DataFrame({"source.ip": ["1.10.16.9", "1.10.32.1"]})

    # 1. 200 with an ETag: loaded
    assert manager.refresh() is True
    assert _status(manager, "drop")["entries"] == 1385
    assert enricher.enrich(probe)["threat.indicator.feed"].to_list() == ["drop", None]
    assert server.script.requests[-1].get("if-none-match") is None

    # 2. unchanged: the client asks conditionally and gets a 304
    clock.advance(hours=2)
    manager.refresh(force=True)
    asked = server.script.requests[-1]
    assert asked["if-none-match"] == '"v1"'
    assert asked["if-modified-since"] == "Fri, 17 Jan 2025 17:03:47 GMT"
    sample = manager.metrics.registry.get_sample_value
    assert (
        sample("shopwatch_enrich_feed_refreshes_total", {"feed": "drop", "result": "not_modified"})
        == 1
    )
    assert _status(manager, "drop")["last_refresh"] == clock.now.isoformat()  # confirmed as of now

    # 3. a 500, 4. a response slower than the timeout, 5. a page that is not the format
    for mode, reason in (("error", "http_status"), ("slow", "timeout"), ("garbage", "malformed")):
        server.script.modes = [mode]
        clock.advance(minutes=10)
        started = time.monotonic()
        assert manager.refresh(force=True) is False
        if mode == "slow":
            assert time.monotonic() - started < 0.95, "the client must give up at its timeout"
        assert _errors(manager, "drop", reason) == 1
        status = _status(manager, "drop")
        assert status["last_error_reason"] == reason and status["entries"] == 1385
        assert enricher.enrich(probe)["threat.indicator.feed"].to_list() == ["drop", None]
    assert _status(manager, "drop")["errors"] == 3
    assert "HTTP 500" not in str(
        _status(manager, "drop")["last_error"]
    )  # the latest error is shown

    # the status is on disk for `intel status --cached`
    written = read_status(tmp_path / "intel")
    assert written is not None and written[0]["last_error_reason"] == "malformed"

    # 6. a new version: loaded, the error is cleared
    server.script.body = (datasets / INTEL / "spamhaus_edrop.txt").read_bytes()
    server.script.etag = '"v2"'
    clock.advance(minutes=10)
    assert manager.refresh(force=True) is True
    status = _status(manager, "drop")
    assert status["entries"] == 289 and status["last_error"] is None
    assert enricher.enrich(probe)["threat.indicator.feed"].to_list() == [None, None]


def test_unreachable_url_and_expiry_while_failing(datasets: Path) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    clock = Clock()
    drop = datasets / INTEL / "spamhaus_drop.txt"
    feeds = [
        FeedConfig(
            name="gone",
            url=f"http://127.0.0.1:{port}/feed.txt",
            format="spamhaus",
            timeout="1s",
            allow_private=True,  # the test server is on loopback
        ),
        FeedConfig(name="local", path=drop, format="spamhaus", ttl="1h", refresh="10m"),
    ]
    manager = FeedManager(feeds, clock=clock)
    manager.refresh()
    assert _errors(manager, "gone", "unreachable") == 1
    assert _status(manager, "local")["entries"] == 1385
    assert _status(manager, "gone")["entries"] == 0

    # the file is unchanged: not parsed again, its content confirmed
    clock.advance(minutes=30)
    manager.refresh()
    sample = manager.metrics.registry.get_sample_value
    assert (
        sample("shopwatch_enrich_feed_refreshes_total", {"feed": "local", "result": "not_modified"})
        == 1
    )
    assert _status(manager, "local")["entries"] == 1385


def test_a_feed_that_keeps_failing_expires(server: FeedServer, datasets: Path) -> None:
    server.script.body = (datasets / INTEL / "spamhaus_edrop.txt").read_bytes()
    clock = Clock()
    feed = FeedConfig(
        name="edrop",
        url=_url(server),
        format="spamhaus",
        ttl="1h",
        refresh="10m",
        timeout="2s",
        allow_private=True,  # the test server is on loopback
    )
    manager = FeedManager([feed], clock=clock)
    manager.refresh()
    assert _status(manager, "edrop")["entries"] == 289
    server.script.modes = ["error"] * 10
    for _ in range(3):
        clock.advance(minutes=25)
        manager.refresh()
    status = _status(manager, "edrop")
    assert status["entries"] == 0 and status["expired"] == 289
    assert (
        manager.metrics.registry.get_sample_value(
            "shopwatch_enrich_feed_expired", {"feed": "edrop"}
        )
        == 289
    )


def test_restart_starts_from_the_cached_body(
    server: FeedServer, datasets: Path, tmp_path: Path
) -> None:
    server.script.body = (datasets / INTEL / "spamhaus_dropv6.txt").read_bytes()
    feed = FeedConfig(
        name="v6", url=_url(server), format="spamhaus", timeout="2s", allow_private=True
    )
    first = FeedManager([feed], state_dir=tmp_path)
    first.refresh()
    assert _status(first, "v6")["entries"] == 78
    # a new process, the server down: the cached body is used and the ETag is remembered
    again = FeedManager([feed], state_dir=tmp_path)
    assert again.index.size == 78
    server.script.modes = ["ok"]
    again.refresh()
    assert server.script.requests[-1]["if-none-match"] == '"v1"'


def test_misp_feed_over_http_and_from_a_folder(server: FeedServer, fixtures_dir: Path) -> None:
    folder = fixtures_dir / "intel" / "misp_feed"
    server.script.body = (folder / "manifest.json").read_bytes()
    server.script.files = {p.name: p.read_bytes() for p in folder.glob("*-*.json")}
    feeds = [
        FeedConfig(
            name="circl",
            url=_url(server, "/feeds/circl/manifest.json"),
            allow_private=True,
            format="misp",
            timeout="2s",
        ),
        FeedConfig(name="circl_local", path=folder, format="misp"),
    ]
    manager = FeedManager(feeds)
    manager.refresh()
    for name in ("circl", "circl_local"):
        status = _status(manager, name)
        assert status["entries"] == 6, status
        assert status["by_type"] == {"domain-name": 2, "ipv4-addr": 2, "url": 1, "file": 1}
    asked = {r["path"] for r in server.script.requests}
    assert "/feeds/circl/2d7a0c43-9f1b-4f7e-8c55-0b6f1e9a3c11.json" in asked


def test_background_thread_refreshes_and_stops(server: FeedServer, datasets: Path) -> None:
    server.script.body = (datasets / INTEL / "spamhaus_edrop.txt").read_bytes()
    feed = FeedConfig(
        name="edrop",
        url=_url(server),
        format="spamhaus",
        refresh="100ms",
        timeout="2s",
        allow_private=True,  # the test server is on loopback
    )
    manager = FeedManager([feed])
    manager.start()
    try:
        deadline = time.monotonic() + 10
        while len(server.script.requests) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        manager.stop()
    assert len(server.script.requests) >= 3
    assert manager.index.size == 289
    assert server.script.requests[-1].get("if-none-match") == '"v1"'
    count = len(server.script.requests)
    time.sleep(0.3)
    assert len(server.script.requests) == count, "no refresh after stop"


def test_config_schema_and_lists(tmp_path: Path, datasets: Path) -> None:
    with pytest.raises(ValueError, match="exactly one of url and path"):
        FeedConfig(name="x", format="plain")
    with pytest.raises(ValueError, match="http or https"):
        FeedConfig(name="x", url="ftp://example.org/x", format="plain")
    with pytest.raises(ValueError, match="duration"):
        FeedConfig(name="x", path=Path("x"), format="plain", ttl="30")
    with pytest.raises(ValueError, match="extra"):
        IntelSettings.model_validate({"feedz": []})
    listing = tmp_path / "feeds.yaml"
    listing.write_text(
        "- name: drop\n  path: drop.txt\n  format: spamhaus\n  confidence: 85\n"
        "- name: tor\n  url: http://127.0.0.1:9/exits\n  format: tor_exit_addresses\n  confidence: 30\n  ttl: null\n"
    )
    feeds = load_feed_configs(listing)
    assert feeds[0].path == tmp_path / "drop.txt"
    assert feeds[1].ttl_delta is None
    listing.write_text("- name: drop\n  path: drop.txt\n  format: spamhaus\n  confidance: 85\n")
    with pytest.raises(ContentError, match=r"feed #1 is invalid.*confidance"):
        load_feed_configs(listing)
    with pytest.raises(ConfigError, match="named twice"):
        FeedManager([feeds[0], feeds[0]])


def test_settings_load_the_shipped_offline_feed(tmp_path: Path) -> None:
    manager = FeedManager.from_settings(Settings(data_dir=tmp_path))
    assert [f.name for f in manager.feeds] == ["shopwatch_demo"]
    assert all(f.url is None for f in manager.feeds), "nothing remote by default"
    manager.refresh()
    status = _status(manager, "shopwatch_demo")
    assert status["entries"] == 16 and status["last_error"] is None
    off = FeedManager.from_settings(Settings(data_dir=tmp_path, intel={"builtin": False}))
    assert off.feeds == []
    with pytest.raises(ValidationError, match=r"intel\.feeds\.0\.format"):
        Settings(data_dir=tmp_path, intel={"feeds": [{"name": "x"}]})
    with pytest.raises(ConfigError, match="invalid intel settings"):  # an untyped caller
        FeedManager.from_settings(SimpleNamespace(intel={"feeds": [{"name": "x"}]}))


def test_enricher_from_settings_loads_before_returning(tmp_path: Path, datasets: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        intel={
            "builtin": False,
            "feeds": [
                {
                    "name": "feodo",
                    "path": str(datasets / INTEL / "feodotracker_ipblocklist.csv"),
                    "format": "abusech_csv",
                    "confidence": 95,
                    "ttl": None,
                },
                {"name": "missing", "path": str(tmp_path / "nope.txt"), "format": "plain"},
            ],
        },
    )
    replay = IntelEnricher.from_settings(settings)
    out = replay.enrich(pl.DataFrame({"source.ip": ["192.9.135.73"]}))
    assert out["threat.indicator.feed"].item() == "feodo"
    assert read_status(tmp_path / "intel") is None, "a replay writes nothing"
    live = IntelEnricher.from_settings(settings, live=True)
    try:
        out = live.enrich(pl.DataFrame({"source.ip": ["192.9.135.73"]}))
        assert out["threat.indicator.feed"].item() == "feodo"
    finally:
        live.close()
    status = read_status(tmp_path / "intel")
    assert status is not None
    missing = next(s for s in status if s["name"] == "missing")
    assert missing["last_error_reason"] == "missing" and missing["errors"] == 1


def test_a_crash_in_a_feed_reader_logs_no_secret(capsys: pytest.CaptureFixture[str]) -> None:
    # a reader bug whose exception echoes what it was given: the only way to reach this
    # path is to make something inside raise, so the network is replaced here
    import httpx

    from shopwatch.cli.common import setup_logging

    secret = "crash-token-0099"

    def explode(request: httpx.Request) -> httpx.Response:
        raise RuntimeError(f"cannot handle {request.headers['authorization']} for {request.url}")

    feed = FeedConfig(
        name="bearer", url="https://feeds.example/x.txt", format="plain", token=SecretStr(secret)
    )
    setup_logging("info")
    manager = FeedManager([feed], transport=httpx.MockTransport(explode))
    manager.refresh()
    status = _status(manager, "bearer")
    assert status["last_error_reason"] == "internal"
    logged = capsys.readouterr()
    assert "feed_refresh_crashed" in logged.err + logged.out
    assert secret not in logged.err + logged.out + str(status)
