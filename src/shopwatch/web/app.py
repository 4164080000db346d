"""The analyst web UI: live alerts page, login, health, metrics and the JSON API.

``create_app(store, token=...)`` builds a Starlette app; ``serve(app)`` runs it with
uvicorn in a background thread (the CLI's ``run`` and ``demo`` use both). Pages and API
share one security model: the bearer token, or a session cookie obtained by logging in
with it (see :mod:`shopwatch.web.auth`). Every response carries a strict Content Security
Policy (scripts only from ``/static``, nothing from other origins, no framing).
"""

from __future__ import annotations

import html
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from importlib.resources import files
from string import Template
from typing import Any, Final
from urllib.parse import parse_qs

import structlog
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shopwatch.contract import CATEGORIES, SEVERITIES
from shopwatch.errors import ConfigError, StoreError
from shopwatch.hostcheck import HostGuard
from shopwatch.store import Store
from shopwatch.web.api import Api, JSONResponse, error
from shopwatch.web.auth import COOKIE_NAME, Auth, clean_analyst
from shopwatch.web.metrics import LOGINS, REQUESTS

__all__ = ["SECURITY_HEADERS", "WebServer", "create_app", "serve"]

log = structlog.get_logger("shopwatch.web")

SECURITY_HEADERS: Final[dict[str, str]] = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=()",
}
_MAX_FORM: Final = 4096


@cache
def _template(name: str) -> Template:
    """A page template shipped in ``web/static`` (read once)."""
    return Template(files("shopwatch.web").joinpath("static", name).read_text(encoding="utf-8"))


def _options(values: tuple[str, ...]) -> str:
    return "".join(
        f'<option value="{html.escape(v)}">{html.escape(v.replace("_", " "))}</option>'
        for v in values
    )


class _Guard:
    """ASGI middleware: security headers on every response, requests counted by route."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in SECURITY_HEADERS
                ]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                if not scope["path"].startswith("/static/"):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
                route = scope.get("route")
                REQUESTS.labels(getattr(route, "path", "other"), str(message["status"])).inc()
            await send(message)

        await self.app(scope, receive, send_guarded)


class _Pages:
    """Login, logout and the live alerts page."""

    def __init__(self, auth: Auth) -> None:
        self.auth = auth

    async def index(self, request: Request) -> Response:
        """The live alerts page; without a session, a redirect to ``/login``."""
        principal = self.auth.session(request.cookies.get(COOKIE_NAME))
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        page = _template("index.html").substitute(
            analyst=html.escape(principal.analyst),
            category_options=_options(CATEGORIES),
            severity_options=_options(SEVERITIES),
        )
        return HTMLResponse(page)

    async def login_form(self, request: Request) -> Response:
        """``GET /login``: the form, or a login straight away with ``?token=``."""
        unknown = set(request.query_params) - {"token", "analyst"}
        if unknown:
            return self._form(f"unknown parameter {sorted(unknown)[0]!r}", status=400)
        token = request.query_params.get("token")
        if token is None:
            return self._form()
        return self._login(request, token, request.query_params.get("analyst"))

    async def login_submit(self, request: Request) -> Response:
        """``POST /login`` from the form (``application/x-www-form-urlencoded``)."""
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/x-www-form-urlencoded":
            return self._form("send the login form as application/x-www-form-urlencoded", 415)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_FORM:
                return self._form("login form too large", status=413)
        try:
            fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=8)
        except ValueError:
            return self._form("the login form has too many fields", status=400)
        token = (fields.get("token") or [""])[0]
        analyst = (fields.get("analyst") or [""])[0]
        return self._login(request, token, analyst)

    async def logout(self, request: Request) -> Response:
        """End the session (the cookie is cleared) and go back to the login form."""
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict")
        return response

    def _login(self, request: Request, token: str, analyst: str | None) -> Response:
        client = request.client.host if request.client else "-"
        if not self.auth.is_token(token):
            LOGINS.labels("failure").inc()
            log.warning("web_login_failed", client=client)
            return self._form("That token is not right.", status=401)
        name = clean_analyst(analyst)
        LOGINS.labels("success").inc()
        log.info("web_login_succeeded", analyst=name, client=client)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            self.auth.issue(name),
            max_age=self.auth.session_ttl_s,
            path="/",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return response

    def _form(self, message: str = "", status: int = 200) -> HTMLResponse:
        notice = (
            f'<p class="login-error" role="alert">{html.escape(message)}</p>' if message else ""
        )
        return HTMLResponse(_template("login.html").substitute(error=notice), status_code=status)


async def _health(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _metrics(request: Request) -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _store_failed(request: Request, exc: Exception) -> Response:
    log.error("web_store_failed", path=request.url.path, error=str(exc))
    return error(503, f"the store is unavailable: {exc}")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/api/"):
        response: Response = error(exc.status_code, exc.detail or "error")
    else:
        response = Response(exc.detail, status_code=exc.status_code, media_type="text/plain")
    if exc.headers:
        response.headers.update(exc.headers)
    return response


def create_app(
    store: Store,
    *,
    token: str,
    stats: Callable[[], Mapping[str, Any]] | None = None,
    session_ttl_s: int = 12 * 3600,
) -> Starlette:
    """The web app over ``store``; ``token`` guards the API and the login (no default).

    ``token`` must be at least 16 characters (``ConfigError`` otherwise). ``stats`` is
    called on each ``/api/stats`` request for the pipeline's live figures (events/s, events,
    rejected, latency...) and must be cheap and thread-safe. ``/health`` and ``/metrics``
    need no authentication: bind the server to 127.0.0.1.
    """
    auth = Auth(token, session_ttl_s=session_ttl_s)
    pages = _Pages(auth)
    api = Api(store, auth, stats)
    routes = [
        Route("/", pages.index, methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login_submit, methods=["POST"]),
        Route("/logout", pages.logout, methods=["POST"]),
        Route("/health", _health, methods=["GET"]),
        Route("/metrics", _metrics, methods=["GET"]),
        *api.routes(),
        Mount("/static", StaticFiles(packages=[("shopwatch.web", "static")]), name="static"),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={StoreError: _store_failed, HTTPException: _http_error},
    )
    app.add_middleware(_Guard)
    app.state.store = store
    return app


class WebServer:
    """A running uvicorn server (background thread); :meth:`stop` ends it.

    :attr:`port` is the port actually bound (useful with ``port=0``); :attr:`url` the base URL.
    """

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:8080``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish in-flight requests, close the socket and join the thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout_s)
        log.info("web_stopped", host=self.host, port=self.port)

    def __enter__(self) -> WebServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 8080,
    *,
    allowed_hosts: Sequence[str] = (),
    start_timeout_s: float = 10.0,
) -> WebServer:
    """Serve ``app`` with uvicorn in a daemon thread and return once it accepts connections.

    ``port=0`` picks a free port (see :attr:`WebServer.port`). Access logs are off: a
    ``/login?token=`` URL must never reach a log. Requests whose ``Host`` is not
    localhost, a loopback address, ``host`` or one of ``allowed_hosts`` are answered 421
    (DNS rebinding; see :mod:`shopwatch.hostcheck`). Raises ``ConfigError`` when the
    address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise ConfigError(
            f"the web UI cannot listen on {host}:{port}: {err}; choose another web.port"
        ) from err
    sock.listen(128)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        HostGuard(app, host, allowed_hosts, setting="web.allowed_hosts"),
        log_level="warning",
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"web-{bound}", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            raise ConfigError(f"the web UI on {host}:{bound} did not start")
        time.sleep(0.01)
    log.info("web_listening", url=f"http://{host}:{bound}")
    return WebServer(server, thread, host, bound)
