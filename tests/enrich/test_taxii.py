"""The TAXII 2.1 client against a small TAXII 2.1 server (Starlette) on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopwatch.enrich.feeds import FeedFetchError
from shopwatch.enrich.feeds.taxii import TAXII_MEDIA_TYPE, poll_collection
from shopwatch.enrich.intel import IntelEnricher
from shopwatch.enrich.schedule import FeedConfig, FeedManager

COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
USER, PASSWORD = "analyst", "s3cret-taxii"
PAGE = 2


@dataclass
class Taxii:
    """A TAXII 2.1 server's content (objects with their date_added) and the requests it got."""

    objects: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    params: list[dict[str, str]] = field(default_factory=list)
    base: str = ""


def _taxii(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        json.dumps(body), status_code=status, media_type=TAXII_MEDIA_TYPE, headers=headers
    )


def build_app(state: Taxii) -> Starlette:
    """Discovery, API root, collections and objects (paged, added_after), with basic auth."""

    def guard(request: Request) -> Response | None:
        state.requests.append(request)
        state.params.append(dict(request.query_params))
        if "application/taxii+json" not in request.headers.get("accept", ""):
            return _taxii({"title": "Not acceptable", "http_status": "406"}, 406)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        if request.headers.get("authorization") != expected:
            return _taxii({"title": "Unauthorized", "http_status": "401"}, 401)
        return None

    async def discovery(request: Request) -> Response:
        return guard(request) or _taxii(
            {
                "title": "Shop ISAC TAXII",
                "default": f"{state.base}/api1/",
                "api_roots": [f"{state.base}/api1/"],
            }
        )

    async def api_root(request: Request) -> Response:
        return guard(request) or _taxii(
            {"title": "Shop ISAC", "versions": [TAXII_MEDIA_TYPE], "max_content_length": 10485760}
        )

    async def collections(request: Request) -> Response:
        return guard(request) or _taxii(
            {
                "collections": [
                    {
                        "id": "472c94ae-3113-4e3e-a4dd-a9f4ac7471d4",
                        "title": "Write-only drop box",
                        "can_read": False,
                        "can_write": True,
                    },
                    {
                        "id": COLLECTION_ID,
                        "title": "Shop attackers",
                        "can_read": True,
                        "can_write": False,
                        "media_types": ["application/stix+json;version=2.1"],
                    },
                ]
            }
        )

    async def objects(request: Request) -> Response:
        refused = guard(request)
        if refused:
            return refused
        if request.path_params["cid"] != COLLECTION_ID:
            return _taxii({"title": "Not found", "http_status": "404"}, 404)
        wanted = request.query_params.get("match[type]")
        after = request.query_params.get("added_after")
        rows = [
            (added, obj)
            for added, obj in sorted(state.objects, key=lambda r: r[0])
            if (after is None or added > after)
            and (wanted is None or obj["type"] in wanted.split(","))
        ]
        start = int(request.query_params.get("next", "0"))
        page = rows[start : start + PAGE]
        more = start + PAGE < len(rows)
        body: dict[str, Any] = {"more": more, "objects": [obj for _, obj in page]}
        if more:
            body["next"] = str(start + PAGE)
        headers = {}
        if page:
            headers = {
                "X-TAXII-Date-Added-First": page[0][0],
                "X-TAXII-Date-Added-Last": page[-1][0],
            }
        return _taxii(body if page else {"more": False}, headers=headers)

    return Starlette(
        routes=[
            Route("/taxii2/", discovery),
            Route("/api1/", api_root),
            Route("/api1/collections/", collections),
            Route("/api1/collections/{cid}/objects/", objects),
        ]
    )


@pytest.fixture()
def taxii(fixtures_dir: Path) -> Iterator[Taxii]:
    bundle = json.loads((fixtures_dir / "intel" / "stix_bundle.json").read_text())
    state = Taxii()
    for n, obj in enumerate(bundle["objects"]):
        state.objects.append((f"2026-03-10T10:00:{n:02d}.000000Z", obj))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    state.base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(build_app(state), log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started, "TAXII test server did not start"
    try:
        yield state
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


def _client(password: str = PASSWORD) -> httpx.Client:
    return httpx.Client(auth=httpx.BasicAuth(USER, password), timeout=5)


def test_discovery_to_objects_with_pagination(taxii: Taxii) -> None:
    with _client() as client:
        poll = poll_collection(client, f"{taxii.base}/taxii2/")
    indicators = [o for o in poll.objects if o["type"] == "indicator"]
    assert (
        len(poll.objects) == len(indicators) == 9
    )  # match[type]=indicator: no identity, malware...
    assert poll.pages == 5  # pages of 2
    assert poll.collection_url == f"{taxii.base}/api1/collections/{COLLECTION_ID}/"
    assert poll.added_last == "2026-03-10T10:00:09.000000Z"
    assert all(r.headers["accept"] == TAXII_MEDIA_TYPE for r in taxii.requests)
    assert [p.get("next") for p in taxii.params if "match[type]" in p] == [None, "2", "4", "6", "8"]


def test_added_after_fetches_only_new_objects(taxii: Taxii) -> None:
    with _client() as client:
        first = poll_collection(client, f"{taxii.base}/api1/", collection="Shop attackers")
        taxii.objects.append(
            (
                "2026-03-14T08:00:00.000000Z",
                {
                    "type": "indicator",
                    "spec_version": "2.1",
                    "id": "indicator--2f1e0d9c-8b7a-4f6e-9d5c-4b3a2f1e0d9c",
                    "created": "2026-03-14T08:00:00.000Z",
                    "modified": "2026-03-14T08:00:00.000Z",
                    "pattern": "[ipv4-addr:value = '91.92.243.17']",
                    "pattern_type": "stix",
                    "valid_from": "2026-03-14T08:00:00Z",
                    "confidence": 80,
                },
            )
        )
        second = poll_collection(client, f"{taxii.base}/api1/", added_after=first.added_last)
    assert [o["id"] for o in second.objects] == ["indicator--2f1e0d9c-8b7a-4f6e-9d5c-4b3a2f1e0d9c"]
    assert taxii.params[-1]["added_after"] == first.added_last
    assert second.added_last == "2026-03-14T08:00:00.000000Z"


def test_errors_are_feed_errors(taxii: Taxii) -> None:
    with _client("wrong") as client, pytest.raises(FeedFetchError) as err:
        poll_collection(client, f"{taxii.base}/taxii2/")
    assert err.value.reason == "http_status" and "401" in str(err.value)
    with _client() as client, pytest.raises(FeedFetchError, match="no collection 'nope'"):
        poll_collection(client, f"{taxii.base}/taxii2/", collection="nope")


def test_the_loader_keeps_a_taxii_collection_current(taxii: Taxii) -> None:
    feed = FeedConfig(
        name="isac",
        url=f"{taxii.base}/taxii2/",
        allow_private=True,  # the test server is on loopback
        format="taxii",
        confidence=60,
        username=USER,
        password=PASSWORD,  # type: ignore[arg-type]
        collection=COLLECTION_ID,
        timeout="5s",
    )
    manager = FeedManager([feed], clock=lambda: datetime(2026, 3, 14, 12, 0, tzinfo=UTC))
    manager.refresh()
    status = manager.status()[0]
    assert status.last_error is None
    # 9 indicator objects: 5 usable (7 values, one already past valid_until), 3 unsupported, 1 revoked
    assert status.rejected == 3
    assert status.entries == 6 and status.expired == 1
    enricher = IntelEnricher(lambda: manager.index)
    probe = pl.DataFrame({"source.ip": ["45.134.26.10", "193.32.162.200", "91.92.243.17"]})
    assert enricher.enrich(probe)["threat.indicator.confidence"].to_list() == [90, 70, None]

    taxii.objects.append(
        (
            "2026-03-14T08:00:00.000000Z",
            {
                "type": "indicator",
                "spec_version": "2.1",
                "id": "indicator--2f1e0d9c-8b7a-4f6e-9d5c-4b3a2f1e0d9c",
                "created": "2026-03-14T08:00:00.000Z",
                "modified": "2026-03-14T08:00:00.000Z",
                "pattern": "[ipv4-addr:value = '91.92.243.17']",
                "pattern_type": "stix",
                "valid_from": "2026-03-14T08:00:00Z",
            },
        )
    )
    assert manager.refresh(force=True) is True
    assert taxii.params[-1]["added_after"] == "2026-03-10T10:00:09.000000Z"
    assert enricher.enrich(probe)["threat.indicator.confidence"].to_list() == [90, 70, 60]
    # nothing new: no rebuild of the content
    manager.refresh(force=True)
    assert manager.index.stats["isac"].entries == 7
