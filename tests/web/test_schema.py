"""Every route of the web app and of HTTP ingest under generated input: no 500, ever.

The apps have no OpenAPI document, so the routes are read from the apps themselves and
each gets hypothesis strategies for its path parameters, query, headers and body; a
route added later is exercised by the generic strategies without editing this file.

- Unauthenticated (no credentials, a wrong token, a forged session cookie): every route
  but the public ones answers 401 (pages redirect to the login form instead).
- Authenticated: any generated input gets an answer below 500.

Deterministic (``derandomize``) and bounded in examples.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from shopwatch.sources.base import ChunkQueue, SourceMetrics
from shopwatch.sources.http import HttpSource
from shopwatch.store import Store
from shopwatch.web import create_app
from tests.web.conftest import RUNTIME, TOKEN, sample_alerts

FUZZ = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Routes anyone may call: they carry no data of the shop (health, metrics, the login
#: form and its static files; logout only clears the caller's own cookie).
PUBLIC = {
    ("/health", "GET"),
    ("/metrics", "GET"),
    ("/login", "GET"),
    ("/login", "POST"),
    ("/logout", "POST"),
}
#: Pages answer a visitor without a session with a redirect to the login form.
PAGES = {("/", "GET")}
#: Query parameters each API route documents (others are generated too, and refused).
KNOWN_PARAMS = {
    "/api/alerts": ("limit", "since", "until", "category", "severity", "rule_id", "entity"),
    "/api/incidents": ("status", "limit"),
    "/api/decisions": ("active_at", "active"),
    "/login": ("token", "analyst"),
}

_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)
_TIMES = st.sampled_from(
    ["2024-11-29T08:30:00Z", "2024-11-29T09:30:00.5+01:00", "yesterday", "0000-01-01T00:00:00Z"]
)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Starlette]:
    folder: Path = tmp_path_factory.mktemp("schema")
    with Store.open(f"sqlite:///{folder / 'shopwatch.db'}") as store:
        store.save_alerts(sample_alerts())
        yield create_app(store, token=TOKEN, stats=lambda: dict(RUNTIME))


@pytest.fixture(scope="module")
def alert_ids(app: Starlette) -> list[str]:
    return [a.id for a in sample_alerts()]


def endpoints(app: Starlette) -> list[tuple[str, str]]:
    """Every (path template, method) the app routes, static files as one entry."""
    found: list[tuple[str, str]] = []
    for route in app.routes:
        if isinstance(route, Route):
            found += [(route.path, m) for m in sorted(route.methods or ()) if m != "HEAD"]
        elif isinstance(route, Mount):
            found.append((route.path + "/{path}", "GET"))
    return found


def _param_value(name: str) -> st.SearchStrategy[str]:
    specific: dict[str, st.SearchStrategy[str]] = {
        "limit": st.integers(-5, 2000).map(str) | _TEXT,
        "since": _TIMES | _TEXT,
        "until": _TIMES | _TEXT,
        "active_at": _TIMES | _TEXT,
        "category": st.sampled_from(["card_testing", "web_attack", "nope"]) | _TEXT,
        "severity": st.sampled_from(["low", "critical", "severe"]) | _TEXT,
        "active": st.sampled_from(["true", "false", "1", "maybe"]),
    }
    return specific.get(name, _TEXT | st.text(max_size=300))


@st.composite
def requests(draw: st.DrawFn, path: str, method: str, ids: list[str]) -> dict[str, Any]:
    """One request to ``path``: filled path parameters, query, headers and body."""
    url = path
    if "{alert_id}" in url:  # one path segment: no "/", no dot segment the client folds away
        segment = _TEXT.filter(lambda v: v.strip(".") != "" and "/" not in v)
        value = draw(st.sampled_from(ids) | segment)
        url = url.replace("{alert_id}", quote(value, safe=""))
    if "{path}" in url:
        value = draw(st.sampled_from(["app.js", "../../etc/passwd", "%00", "x" * 300]) | _TEXT)
        url = url.replace("{path}", quote(value, safe="/"))
    known = KNOWN_PARAMS.get(path, ())
    keys = st.sampled_from(known) | _ASCII if known else _ASCII
    params = draw(
        st.lists(keys.flatmap(lambda k: st.tuples(st.just(k), _param_value(k))), max_size=4)
    )
    headers: dict[str, str] = {}
    body: bytes | None = None
    if method in ("POST", "PUT", "PATCH"):
        kind = draw(st.sampled_from(["feedback", "json", "form", "bytes"]))
        if kind == "feedback":
            value = draw(
                st.fixed_dictionaries(
                    {"verdict": st.sampled_from(["true_positive", "benign", "maybe"])},
                    optional={"note": _TEXT, "extra": _JSON},
                )
            )
            body = json.dumps(value).encode()
        elif kind == "json":
            body = json.dumps(draw(_JSON)).encode()
        elif kind == "form":
            body = draw(_ASCII).encode()
        else:
            body = draw(st.binary(max_size=300))
        headers["Content-Type"] = draw(
            st.sampled_from(
                ["application/json", "application/x-www-form-urlencoded", "text/plain", ""]
            )
        )
    return {"method": method, "url": url, "params": params, "headers": headers, "content": body}


_CREDENTIALS = st.sampled_from(
    [
        {},
        {"Authorization": "Bearer wrong-token-0000000000"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Cookie": "shopwatch_session=forged.cookie"},
        {"Cookie": "shopwatch_session="},
    ]
)


def _send(client: TestClient, request: dict[str, Any], extra: dict[str, str]) -> Any:
    return client.request(
        request["method"],
        request["url"],
        params=request["params"],
        headers={**request["headers"], **extra},
        content=request["content"],
        follow_redirects=False,
    )


def test_every_route_is_known(app: Starlette) -> None:
    """The routes this test reasons about exist; new ones are fuzzed by the generic strategy."""
    routes = set(endpoints(app))
    assert routes >= PUBLIC | PAGES
    assert {("/api/alerts", "GET"), ("/api/alerts/{alert_id}/feedback", "POST")} <= routes


def _check_unauthenticated(
    client: TestClient, path: str, method: str, ids: list[str], *, page: bool
) -> None:
    @FUZZ
    @given(request=requests(path, method, ids), creds=_CREDENTIALS)
    def check(request: dict[str, Any], creds: dict[str, str]) -> None:
        resp = _send(client, request, creds)
        if page:
            assert resp.status_code == 303 and resp.headers["location"] == "/login"
        else:
            assert resp.status_code == 401, (request, creds, resp.text)

    check()


def test_without_credentials_every_private_route_is_401(
    app: Starlette, alert_ids: list[str]
) -> None:
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        for path, method in endpoints(app):
            if (path, method) in PUBLIC or path.startswith("/static"):
                continue
            _check_unauthenticated(client, path, method, alert_ids, page=(path, method) in PAGES)


def _check_authenticated(client: TestClient, path: str, method: str, ids: list[str]) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}

    @FUZZ
    @given(request=requests(path, method, ids))
    def check(request: dict[str, Any]) -> None:
        resp = _send(client, request, auth)
        assert resp.status_code < 500, (request, resp.status_code, resp.text)

    check()


def test_with_credentials_no_route_answers_500(app: Starlette, alert_ids: list[str]) -> None:
    with TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False) as client:
        for path, method in endpoints(app):
            _check_authenticated(client, path, method, alert_ids)


# -- HTTP ingest ---------------------------------------------------------------------------

INGEST_TOKEN = "ingest-schema-5b1d7e9a3c"
_EVENT = st.fixed_dictionaries(
    {},
    optional={
        "@timestamp": _TIMES | st.integers(-(10**15), 10**15) | _TEXT,
        "event": st.fixed_dictionaries(
            {}, optional={"dataset": st.sampled_from(["shop.auth", "http.access"]) | _TEXT}
        ),
        "event.dataset": st.sampled_from(["shop.auth", "shop.payment"]),
        "source.ip": st.sampled_from(["203.0.113.7", "::1", "not-an-ip"]),
        "user": st.dictionaries(_TEXT, _JSON, max_size=3),
        "extra": _JSON,
    },
)
_LINE = (
    _EVENT.map(json.dumps)
    | _JSON.map(json.dumps)
    | _TEXT
    | st.sampled_from(["", " \t", "\u2028", "\x85", "\r"])
    | st.just(json.dumps({"@timestamp": "2024-03-05T10:15:00Z", "event.dataset": "shop.auth"}))
)


@st.composite
def ingest_bodies(draw: st.DrawFn) -> tuple[bytes, dict[str, str], int]:
    """An NDJSON body (maybe gzipped, maybe with stray bytes), its headers, its line count."""
    lines = draw(st.lists(_LINE, max_size=12))
    raw = "\n".join(lines).encode()
    if draw(st.booleans()):
        raw += draw(st.binary(max_size=20))
    headers = {
        "Content-Type": draw(
            st.sampled_from(["application/x-ndjson", "application/json", "text/plain"])
        )
    }
    if draw(st.booleans()):
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    return raw, headers, len(lines)


@pytest.fixture(scope="module")
def ingest() -> Iterator[tuple[HttpSource, TestClient]]:
    from shopwatch.pipeline.service import ingest_rejects

    source = HttpSource(
        ChunkQueue(max_chunks=10_000, max_lines=1_000_000),
        token=INGEST_TOKEN,
        port=0,
        validate=ingest_rejects,
        metrics=SourceMetrics(),
    )
    with TestClient(
        source.app, base_url="http://127.0.0.1", raise_server_exceptions=False
    ) as client:
        yield source, client


@FUZZ
@given(body=ingest_bodies())
def test_ingest_answers_every_body_and_accounts_for_every_line(
    ingest: tuple[HttpSource, TestClient], body: tuple[bytes, dict[str, str], int]
) -> None:
    _, client = ingest
    content, headers, _ = body
    resp = client.post(
        "/ingest",
        content=content,
        headers={**headers, "Authorization": f"Bearer {INGEST_TOKEN}"},
    )
    assert resp.status_code in (200, 400), resp.text
    answer = resp.json()
    if "accepted" in answer:
        raw = gzip.decompress(content) if headers.get("Content-Encoding") else content
        events = sum(1 for line in raw.split(b"\n") if line.strip(b" \t\r\f\v"))
        assert answer["accepted"] + answer["rejected_count"] == events
        assert all(r["reason"] for r in answer["rejected"])
        assert [r["line"] for r in answer["rejected"]] == sorted(
            r["line"] for r in answer["rejected"]
        )


@FUZZ
@given(
    body=ingest_bodies(),
    creds=st.sampled_from(
        [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {INGEST_TOKEN}"}]
    ),
)
def test_ingest_without_credentials_is_401(
    ingest: tuple[HttpSource, TestClient],
    body: tuple[bytes, dict[str, str], int],
    creds: dict[str, str],
) -> None:
    _, client = ingest
    content, headers, _ = body
    resp = client.post("/ingest", content=content, headers={**headers, **creds})
    assert resp.status_code == 401


@FUZZ
@given(path=_TEXT, method=st.sampled_from(["GET", "POST", "PUT", "DELETE"]))
def test_ingest_other_paths_never_500(
    ingest: tuple[HttpSource, TestClient], path: str, method: str
) -> None:
    _, client = ingest
    resp = client.request(method, "/" + quote(path, safe="/"))
    assert resp.status_code < 500
