"""HTTP ingest against a real uvicorn server on 127.0.0.1 (free port)."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest

from shopwatch.errors import ConfigError
from shopwatch.sources.base import ChunkQueue, SourceMetrics
from shopwatch.sources.http import HttpSource
from tests.sources.conftest import WAIT_S, lines_of, running, take

TOKEN = "ingest-3c9f1e7a0b5d"
NDJSON = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/x-ndjson"}


def event(i: int, **extra: object) -> str:
    """A realistic ECS login event."""
    return json.dumps(
        {
            "@timestamp": f"2024-03-05T10:15:{i % 60:02d}Z",
            "event": {
                "dataset": "shop.auth",
                "action": "login",
                "outcome": "failure",
                "reason": "bad_password",
            },
            "source.ip": f"198.51.100.{i % 250}",
            "user": {"name": f"customer{i}@example.com"},
            "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
            **extra,
        }
    )


@pytest.fixture()
def server() -> Iterator[tuple[HttpSource, ChunkQueue, httpx.Client]]:
    queue = ChunkQueue(max_chunks=2, max_lines=1000)
    source = HttpSource(queue, token=TOKEN, port=0, max_body_bytes=4096, metrics=SourceMetrics())
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        yield source, queue, client


def test_good_ndjson_is_accepted_and_queued(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    source, queue, client = server
    body = "\n".join(event(i) for i in range(3)) + "\n"
    resp = client.post("/ingest", content=body, headers=NDJSON)
    assert resp.status_code == 200
    assert resp.json() == {"accepted": 3, "rejected": [], "rejected_count": 0}
    (chunk,) = take(queue, 3)
    assert (chunk.source, chunk.format, chunk.first_line_no) == (source.chunk_source, "ecs", 1)
    assert source.chunk_source.startswith("http-")
    assert chunk.lines == [event(i) for i in range(3)]
    resp = client.post(
        "/ingest",
        content=event(3),
        headers={**NDJSON, "Content-Type": "application/json; charset=utf-8"},
    )
    assert resp.json()["accepted"] == 1
    assert take(queue, 1)[0].first_line_no == 4  # numbering continues across requests


def test_gzip_body(server: tuple[HttpSource, ChunkQueue, httpx.Client]) -> None:
    _, queue, client = server
    body = gzip.compress("\r\n".join(event(i) for i in range(5)).encode())
    resp = client.post("/ingest", content=body, headers={**NDJSON, "Content-Encoding": "gzip"})
    assert (resp.status_code, resp.json()["accepted"]) == (200, 5)
    assert lines_of(take(queue, 5)) == [event(i) for i in range(5)]


def test_mixed_lines_report_rejects_by_line(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    source, queue, client = server
    body = "\n".join(
        [event(1), '{"event": {"dataset": "shop.auth"', event(2), "", "[1, 2]", event(3)]
    )
    resp = client.post("/ingest", content=body, headers={**NDJSON, "Content-Type": "text/plain"})
    assert resp.status_code == 200
    assert resp.json() == {
        "accepted": 3,
        "rejected": [{"line": 2, "reason": "invalid_json"}, {"line": 5, "reason": "not_an_object"}],
        "rejected_count": 2,
    }
    assert lines_of(take(queue, 3)) == [event(1), event(2), event(3)]
    registry = source.metrics.registry
    assert (
        registry.get_sample_value(
            "shopwatch_sources_rejected_total", {"source": "http", "reason": "invalid_json"}
        )
        == 1
    )


def test_all_bad_lines_is_400(server: tuple[HttpSource, ChunkQueue, httpx.Client]) -> None:
    _, queue, client = server
    resp = client.post("/ingest", content=b"not json\n\xff\xfe\n42\n", headers=NDJSON)
    assert resp.status_code == 400
    assert resp.json()["rejected"] == [
        {"line": 1, "reason": "invalid_json"},
        {"line": 2, "reason": "invalid_json"},
        {"line": 3, "reason": "not_an_object"},
    ]
    assert queue.get(timeout=0.05) is None


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "application/x-ndjson"},
        {**NDJSON, "Authorization": "Bearer wrong-token"},
        {**NDJSON, "Authorization": f"Basic {TOKEN}"},
        {**NDJSON, "Authorization": f"Bearer {TOKEN}x"},
    ],
    ids=["no-token", "wrong-token", "wrong-scheme", "token-prefix"],
)
def test_missing_or_wrong_token_is_401(
    server: tuple[HttpSource, ChunkQueue, httpx.Client], headers: dict[str, str]
) -> None:
    _, queue, client = server
    resp = client.post("/ingest", content=event(1), headers=headers)
    assert resp.status_code == 401
    assert resp.headers["www-authenticate"] == "Bearer"
    assert queue.get(timeout=0.05) is None


def test_oversized_bodies_are_413(server: tuple[HttpSource, ChunkQueue, httpx.Client]) -> None:
    _, queue, client = server
    big = ("\n".join(event(i) for i in range(40)) + "\n").encode()
    assert len(big) > 4096
    assert client.post("/ingest", content=big, headers=NDJSON).status_code == 413  # declared length

    def pieces() -> Iterator[bytes]:  # chunked transfer: no length, caught while streaming
        for i in range(0, len(big), 1024):
            yield big[i : i + 1024]

    assert client.post("/ingest", content=pieces(), headers=NDJSON).status_code == 413
    bomb = gzip.compress(b"{}\n" * 100_000)  # small on the wire, 300 kB inflated
    assert len(bomb) < 4096
    resp = client.post("/ingest", content=bomb, headers={**NDJSON, "Content-Encoding": "gzip"})
    assert resp.status_code == 413
    assert queue.get(timeout=0.05) is None
    assert (
        client.post("/ingest", content=event(1), headers=NDJSON).status_code == 200
    )  # still serving


def test_wrong_content_type_or_encoding_is_415(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    _, _, client = server
    for headers in (
        {**NDJSON, "Content-Type": "application/x-www-form-urlencoded"},
        {"Authorization": NDJSON["Authorization"]},
        {**NDJSON, "Content-Encoding": "br"},
    ):
        assert client.post("/ingest", content=event(1), headers=headers).status_code == 415


def test_corrupt_gzip_is_400(server: tuple[HttpSource, ChunkQueue, httpx.Client]) -> None:
    _, _, client = server
    body = gzip.compress(event(1).encode())[:-12]
    resp = client.post("/ingest", content=body, headers={**NDJSON, "Content-Encoding": "gzip"})
    assert resp.status_code == 400


def test_full_queue_is_429_with_retry_after(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    _, queue, client = server
    for i in range(2):  # the queue holds two chunks
        assert client.post("/ingest", content=event(i), headers=NDJSON).status_code == 200
    resp = client.post("/ingest", content=event(2), headers=NDJSON)
    assert resp.status_code == 429
    assert int(resp.headers["retry-after"]) >= 1
    assert len(queue) == 2
    take(queue, 1)  # the pipeline catches up: room again
    assert client.post("/ingest", content=event(2), headers=NDJSON).status_code == 200
    assert [c.lines for c in take(queue, 2)] == [[event(1)], [event(2)]]


def test_health_and_metrics(server: tuple[HttpSource, ChunkQueue, httpx.Client]) -> None:
    _, _, client = server
    health = client.get("/health")
    assert (health.status_code, health.json()["status"]) == (200, "ok")
    client.post("/ingest", content=event(1) + "\n" + event(2), headers=NDJSON)
    client.post("/ingest", content=event(3), headers={"Content-Type": "application/x-ndjson"})
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'shopwatch_sources_lines_total{source="http"} 2.0' in text
    assert 'shopwatch_sources_http_requests_total{status="200"} 1.0' in text
    assert 'shopwatch_sources_http_requests_total{status="401"} 1.0' in text


def test_token_is_required() -> None:
    with pytest.raises(ConfigError, match="token"):
        HttpSource(ChunkQueue(), token=None)
    with pytest.raises(ConfigError, match="token"):
        HttpSource(ChunkQueue(), token="")


def test_shutting_down_answers_503() -> None:
    queue = ChunkQueue()
    source = HttpSource(queue, token=TOKEN, port=0)
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        assert client.post("/ingest", content=event(1), headers=NDJSON).status_code == 200
        source.begin_shutdown()  # the first step of stop()
        resp = client.post("/ingest", content=event(2), headers=NDJSON)
        assert resp.status_code == 503
        assert "retry-after" in resp.headers
        assert len(queue) == 1
        assert client.get("/health").status_code == 503


def test_invalid_utf8_line_is_rejected_alone(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    _, queue, client = server
    body = event(1).encode() + b"\r\n" + b'{"user": "caf\xe9"}\n' + event(2).encode()
    resp = client.post("/ingest", content=body, headers=NDJSON)
    assert resp.json()["rejected"] == [{"line": 2, "reason": "invalid_json"}]
    assert lines_of(take(queue, 2)) == [event(1), event(2)]


def test_port_in_use_is_a_config_error() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        queue = ChunkQueue()
        source = HttpSource(queue, token=TOKEN, port=taken.getsockname()[1])
        with pytest.raises(ConfigError, match="cannot listen"), running([source], queue):
            pass


def test_events_per_request_are_capped_by_the_queue_bound() -> None:
    """One request of many tiny events must not pass the queue's line bound."""
    queue = ChunkQueue(max_chunks=4, max_lines=100)
    source = HttpSource(queue, token=TOKEN, port=0, metrics=SourceMetrics())
    assert source.max_events_per_request == 100  # the configured 50,000 cannot fit
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        resp = client.post("/ingest", content="{}\n" * 101, headers=NDJSON)
        assert resp.status_code == 413
        assert "more than 100 events" in resp.json()["error"]
        assert resp.json()["max_events_per_request"] == 100
        assert queue.get(timeout=0.05) is None
        ok = client.post("/ingest", content="\n".join(event(i) for i in range(100)), headers=NDJSON)
        assert ok.status_code == 200
        assert len(take(queue, 100)) == 1


def test_events_per_request_setting() -> None:
    from shopwatch.config import HttpIngestSettings

    settings = HttpIngestSettings(token=TOKEN, max_events_per_request=7)
    assert HttpSource.from_settings(settings, ChunkQueue()).max_events_per_request == 7
    with pytest.raises(ConfigError, match="max_events_per_request"):
        HttpSource(ChunkQueue(), token=TOKEN, max_events_per_request=0)


def test_events_the_parser_would_drop_are_rejected_in_the_answer() -> None:
    from shopwatch.pipeline.service import ingest_rejects

    queue = ChunkQueue()
    source = HttpSource(queue, token=TOKEN, port=0, validate=ingest_rejects)
    no_time = json.dumps({"event": {"dataset": "shop.auth", "action": "login"}})
    bad_time = json.dumps({"@timestamp": "yesterday", "event.dataset": "shop.auth"})
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        body = "\n".join([event(1), no_time, "[]", bad_time, event(2)])
        resp = client.post("/ingest", content=body, headers=NDJSON)
        assert resp.status_code == 200
        assert resp.json() == {
            "accepted": 2,
            "rejected": [
                {"line": 2, "reason": "missing_field"},
                {"line": 3, "reason": "not_an_object"},
                {"line": 4, "reason": "bad_timestamp"},
            ],
            "rejected_count": 3,
        }
        assert lines_of(take(queue, 2)) == [event(1), event(2)]
        alone = client.post("/ingest", content=no_time, headers=NDJSON)
        assert (alone.status_code, alone.json()["accepted"]) == (400, 0)
    registry = source.metrics.registry
    assert (
        registry.get_sample_value(
            "shopwatch_sources_rejected_total", {"source": "http", "reason": "missing_field"}
        )
        == 2
    )


def test_assigned_ids_do_not_repeat_across_instances() -> None:
    """Events without event.id are named <chunk source>:<n>; a restart must not reuse them."""
    import polars as pl

    from shopwatch.parse import ParseContext, parse_frame

    ids: list[str] = []
    for _ in range(2):  # two runs of the service, each a new source instance
        queue = ChunkQueue()
        source = HttpSource(queue, token=TOKEN, port=0)
        with (
            running([source], queue),
            httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
        ):
            for i in range(2):  # two requests
                assert client.post("/ingest", content=event(i), headers=NDJSON).status_code == 200
            for chunk in take(queue, 2):
                frame = pl.DataFrame(
                    {"line": chunk.lines, "line_no": [chunk.first_line_no]},
                    schema={"line": pl.String, "line_no": pl.Int64},
                )
                batch = parse_frame(frame, "ecs", ParseContext(source=chunk.source)).batch
                ids.extend(batch["event.id"].to_list())
    assert len(ids) == 4
    assert len(set(ids)) == 4, ids


def test_a_foreign_host_header_is_refused(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    """DNS rebinding: a page on another name pointed at 127.0.0.1 must not reach ingest."""
    source, queue, client = server
    foreign = {**NDJSON, "Host": f"rebind.example:{source.port}"}
    assert client.post("/ingest", content=event(1), headers=foreign).status_code == 421
    assert client.get("/health", headers={"Host": "rebind.example"}).status_code == 421
    assert queue.get(timeout=0.05) is None
    local = {**NDJSON, "Host": f"localhost:{source.port}"}
    assert client.post("/ingest", content=event(1), headers=local).status_code == 200


def test_allowed_hosts_come_from_the_settings() -> None:
    from shopwatch.config import HttpIngestSettings

    settings = HttpIngestSettings(token=TOKEN, port=0, allowed_hosts=["ingest.internal"])
    queue = ChunkQueue()
    source = HttpSource.from_settings(settings, queue)
    with (
        running([source], queue),
        httpx.Client(base_url=f"http://127.0.0.1:{source.port}", timeout=WAIT_S) as client,
    ):
        headers = {**NDJSON, "Host": "ingest.internal"}
        assert client.post("/ingest", content=event(1), headers=headers).status_code == 200


def test_a_line_of_unicode_spaces_is_rejected_not_skipped(
    server: tuple[HttpSource, ChunkQueue, httpx.Client],
) -> None:
    _, queue, client = server
    body = event(1) + "\n\u2028\n \t\r\n" + event(2)
    resp = client.post("/ingest", content=body.encode(), headers=NDJSON)
    assert resp.json()["rejected"] == [{"line": 2, "reason": "invalid_json"}]
    assert resp.json()["accepted"] == 2
    take(queue, 2)
