"""Authentication: bearer token, login (link and form), signed session cookies, headers."""

from __future__ import annotations

import re

import pytest
from starlette.testclient import TestClient
from structlog.testing import capture_logs

from shopwatch.errors import ConfigError
from shopwatch.store import Store
from shopwatch.web import Auth, create_app
from shopwatch.web.auth import COOKIE_NAME
from tests.web.conftest import TOKEN

API_ROUTES = [
    ("GET", "/api/alerts"),
    ("GET", "/api/alerts/abc"),
    ("GET", "/api/alerts/abc/feedback"),
    ("POST", "/api/alerts/abc/feedback"),
    ("GET", "/api/stats"),
    ("GET", "/api/incidents"),
    ("GET", "/api/decisions"),
]


def _get_with_cookie(client: TestClient, path: str, value: str) -> int:
    """Status of GET ``path`` sending only ``value`` as the session cookie."""
    client.cookies.clear()
    client.cookies.set(COOKIE_NAME, value)
    try:
        return client.get(path, follow_redirects=False).status_code
    finally:
        client.cookies.clear()


def _login(client: TestClient, analyst: str | None = None) -> str:
    params = {"token": TOKEN} | ({"analyst": analyst} if analyst else {})
    response = client.get("/login", params=params, follow_redirects=False)
    assert response.status_code == 303
    cookie = response.cookies.get(COOKIE_NAME)
    assert cookie
    return cookie


@pytest.mark.parametrize(("method", "path"), API_ROUTES)
def test_every_api_route_needs_credentials(client: TestClient, method: str, path: str) -> None:
    response = client.request(method, path, json={"verdict": "benign"})
    assert response.status_code == 401
    assert "login" in response.json()["error"]
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer ",
        f"Basic {TOKEN}",
        TOKEN,
        "Bearer wrong",
    ],
)
def test_wrong_token_is_refused(client: TestClient, header: str) -> None:
    response = client.get("/api/alerts", headers={"Authorization": header})
    assert response.status_code == 401
    assert "Authorization" in response.json()["error"]


def test_bearer_token_is_accepted(client: TestClient, bearer: dict[str, str]) -> None:
    response = client.get("/api/alerts", headers=bearer)
    assert response.status_code == 200
    assert len(response.json()) == 8


def test_login_link_sets_a_signed_httponly_strict_cookie(client: TestClient) -> None:
    response = client.get("/login", params={"token": TOKEN}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/"
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"{COOKIE_NAME}=")
    assert "HttpOnly" in set_cookie
    assert "SameSite=strict" in set_cookie or "SameSite=Strict" in set_cookie
    value = response.cookies[COOKIE_NAME]
    assert TOKEN not in value and TOKEN not in set_cookie
    assert re.fullmatch(r"v1\.[\w-]+\.[\w-]+", value)

    assert client.get("/api/alerts").status_code == 200  # the client keeps the cookie
    page = client.get("/")
    assert page.status_code == 200
    assert 'id="alert-rows"' in page.text


def test_login_form_posts_and_names_the_analyst(client: TestClient) -> None:
    form = client.get("/login")
    assert form.status_code == 200
    assert 'name="token"' in form.text and 'method="post"' in form.text
    response = client.post(
        "/login", data={"token": TOKEN, "analyst": "Alice <b>"}, follow_redirects=False
    )
    assert response.status_code == 303 and response.headers["location"] == "/"
    page = client.get("/")
    assert "Alice b" in page.text  # the name is cleaned before it is signed and shown
    assert "Alice <b>" not in page.text and "Alice &lt;b&gt;" not in page.text


@pytest.mark.parametrize("how", ["link", "form"])
def test_wrong_login_gives_no_cookie(client: TestClient, how: str) -> None:
    if how == "link":
        response = client.get("/login", params={"token": "nope"}, follow_redirects=False)
    else:
        response = client.post("/login", data={"token": "nope"}, follow_redirects=False)
    assert response.status_code == 401
    assert COOKIE_NAME not in response.cookies
    assert "not right" in response.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_page_without_session_redirects_to_login(client: TestClient) -> None:
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


def test_tampered_cookie_is_refused(client: TestClient) -> None:
    cookie = _login(client, "alice")
    version, payload, signature = cookie.split(".")
    client.cookies.clear()
    # Change the analyst inside the payload, keep the old signature.
    import base64
    import json

    body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    body["a"] = "mallory"
    forged = base64.urlsafe_b64encode(json.dumps(body).encode()).rstrip(b"=").decode()
    for value in (
        f"{version}.{forged}.{signature}",
        f"{version}.{payload}.{signature[:-3]}AAA",
        f"{version}.{payload}",
        TOKEN,
        "",
    ):
        assert _get_with_cookie(client, "/api/alerts", value) == 401, value
        assert _get_with_cookie(client, "/", value) == 303, value


def test_expired_session_is_refused(client: TestClient) -> None:
    old = Auth(TOKEN, session_ttl_s=60).issue("alice", now=1_700_000_000)
    client.cookies.set(COOKIE_NAME, old)
    response = client.get("/api/stats")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]


def test_session_of_another_token_is_refused(client: TestClient) -> None:
    other = Auth("another-token-of-enough-length").issue("alice")
    assert _get_with_cookie(client, "/api/alerts", other) == 401
    assert _get_with_cookie(client, "/api/alerts", Auth(TOKEN).issue("alice")) == 200


def test_wrong_bearer_beats_a_valid_cookie(client: TestClient) -> None:
    _login(client)
    response = client.get("/api/alerts", headers={"Authorization": "Bearer wrong"})
    assert response.status_code == 401


def test_logout_clears_the_session(client: TestClient) -> None:
    _login(client)
    response = client.post("/logout", follow_redirects=False)
    assert response.status_code == 303
    assert (
        f'{COOKIE_NAME}=""' in response.headers["set-cookie"]
        or "Max-Age=0" in response.headers["set-cookie"]
    )
    assert client.get("/api/alerts").status_code == 401


@pytest.mark.parametrize("token", ["", "   ", "short-token"])
def test_app_refuses_to_build_without_a_real_token(store: Store, token: str) -> None:
    with pytest.raises(ConfigError, match="token"):
        create_app(store, token=token)


def test_token_is_never_logged_or_shown(client: TestClient) -> None:
    with capture_logs() as logs:
        client.get("/login", params={"token": TOKEN, "analyst": "alice"})
        client.get("/login", params={"token": TOKEN + "-wrong"})
        client.post("/login", data={"token": TOKEN})
        client.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert any(entry["event"] == "web_login_succeeded" for entry in logs)
    assert any(entry["event"] == "web_login_failed" for entry in logs)
    assert TOKEN not in repr(logs)
    assert TOKEN not in client.get("/").text
    assert TOKEN not in repr(Auth(TOKEN))


@pytest.mark.parametrize("path", ["/", "/login", "/api/alerts", "/health", "/static/app.js"])
def test_security_headers_everywhere(client: TestClient, path: str) -> None:
    _login(client)
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_pages_have_no_inline_script_and_load_nothing_from_outside(client: TestClient) -> None:
    _login(client)
    for path in ("/", "/login"):
        text = client.get(path).text
        for tag in re.findall(r"<script[^>]*>", text):
            assert 'src="/static/' in tag, tag
        assert not re.search(r"<[^>]+\son[a-z]+=", text)  # no onclick= and the like
        assert "style=" not in text
        assert not re.search(r'(src|href)="(https?:)?//', text)
    assert "<script>" not in client.get("/").text
