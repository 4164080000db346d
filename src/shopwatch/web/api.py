"""The JSON API under ``/api``: alerts, stats, feedback, incidents and decisions.

Every route needs the bearer token or a session cookie (:func:`authenticated`). Query
parameters are checked strictly: an unknown, repeated or malformed one is a 400 whose
message says what was wrong and what is accepted. Store calls are blocking, so they run in
Starlette's thread pool; a :class:`~shopwatch.errors.StoreError` becomes a 503.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any, Final, Literal

import orjson
import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from shopwatch.contract import CATEGORIES, SEVERITIES
from shopwatch.store import Store
from shopwatch.web.auth import COOKIE_NAME, Auth, Principal
from shopwatch.web.metrics import AUTH_FAILURES

__all__ = [
    "MAX_LIMIT",
    "Api",
    "BadRequest",
    "FeedbackIn",
    "JSONResponse",
    "authenticated",
    "error",
    "parse_time",
]

log = structlog.get_logger("shopwatch.web")

MAX_LIMIT: Final = 1000
_MAX_TEXT: Final = 256
_MAX_BODY: Final = 16 * 1024
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:[Zz]|[+-]\d{2}:\d{2})"
)
_PLUS_LOST: Final = re.compile(r".*\d{2}:\d{2}:\d{2}(?:\.\d+)? \d{2}:\d{2}")

Endpoint = Callable[[Request], Awaitable[Response]]


class JSONResponse(Response):
    """JSON via orjson: datetimes as RFC 3339 with ``Z``, unknown objects as ``str``."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialize ``content``."""
        return orjson.dumps(content, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS, default=str)


class BadRequest(Exception):
    """A query parameter or body that the API cannot use; the message is shown to the client."""


def error(status: int, message: str, **extra: Any) -> JSONResponse:
    """The API's error shape: ``{"error": message, ...}``."""
    return JSONResponse({"error": message, **extra}, status_code=status)


def parse_time(name: str, value: str) -> datetime:
    """An RFC 3339 date-time with a zone (``2024-11-29T08:30:00Z``) as aware UTC.

    >>> parse_time("since", "2024-11-29T09:30:00.5+01:00").isoformat()
    '2024-11-29T08:30:00.500000+00:00'
    >>> parse_time("since", "yesterday")
    Traceback (most recent call last):
    ...
    shopwatch.web.api.BadRequest: since='yesterday' is not an RFC 3339 date-time; write e.g. 2024-11-29T08:30:00Z (with Z or an offset such as +01:00)
    """
    text = value.strip()
    hint = "write e.g. 2024-11-29T08:30:00Z (with Z or an offset such as +01:00)"
    if not _RFC3339.fullmatch(text):
        if _PLUS_LOST.fullmatch(text):
            hint = "a '+' in a URL means a space: encode the offset's '+' as %2B, or use Z"
        raise BadRequest(f"{name}={value[:64]!r} is not an RFC 3339 date-time; {hint}")
    text = text[:-1] + "+00:00" if text[-1] in "Zz" else text
    # Python's parser takes at most 6 fractional digits: drop nanoseconds.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError as err:
        raise BadRequest(f"{name}={value[:64]!r} is not a valid date-time: {err}") from err


def _query(request: Request, allowed: tuple[str, ...]) -> dict[str, str]:
    """The query parameters, each given at most once and all of them known."""
    params = request.query_params
    unknown = sorted(set(params.keys()) - set(allowed))
    if unknown:
        raise BadRequest(
            f"unknown query parameter {', '.join(map(repr, unknown))}; "
            f"this route accepts {', '.join(allowed) or 'none'}"
        )
    out: dict[str, str] = {}
    for key in params:
        values = params.getlist(key)
        if len(values) > 1:
            raise BadRequest(f"query parameter {key!r} is given {len(values)} times; give it once")
        if len(values[0]) > _MAX_TEXT:
            raise BadRequest(f"query parameter {key!r} is longer than {_MAX_TEXT} characters")
        out[key] = values[0]
    return out


def _limit(params: Mapping[str, str], default: int = 100) -> int:
    raw = params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"limit={raw[:32]!r} is not a whole number; give 1 to {MAX_LIMIT}"
        ) from None
    if not 1 <= value <= MAX_LIMIT:
        raise BadRequest(f"limit={value} is out of range; give 1 to {MAX_LIMIT}")
    return value


def _choice(params: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = params.get(name) or None
    if value is not None and value not in choices:
        raise BadRequest(f"{name}={value[:64]!r} is unknown; use one of {', '.join(choices)}")
    return value


def _record(record: Any) -> dict[str, Any]:
    """A frozen dataclass (Incident, Decision) as a JSON-ready dict."""
    return dataclasses.asdict(record)


class FeedbackIn(BaseModel):
    """The body of ``POST /api/alerts/{id}/feedback``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    verdict: Literal["true_positive", "false_positive", "benign"]
    note: str = Field(default="", max_length=2000)


def authenticated(auth: Auth) -> Callable[[Endpoint], Endpoint]:
    """Wrap an endpoint: 401 unless the bearer token or a valid session cookie is sent.

    A wrong ``Authorization`` header is refused even when a valid cookie comes with it.
    The principal is left in ``request.state.principal``; a :class:`BadRequest` raised by
    the endpoint becomes a 400.
    """

    def wrap(endpoint: Endpoint) -> Endpoint:
        @wraps(endpoint)
        async def guarded(request: Request) -> Response:
            principal = _principal(auth, request)
            if isinstance(principal, Response):
                return principal
            request.state.principal = principal
            try:
                return await endpoint(request)
            except BadRequest as err:
                return error(400, str(err))

        return guarded

    return wrap


def _principal(auth: Auth, request: Request) -> Principal | Response:
    bearer = auth.bearer(request.headers.get("authorization"))
    if bearer is True:
        return Principal(analyst="api", via="token")
    if bearer is False:
        AUTH_FAILURES.labels("bad_token").inc()
        return _unauthorized("wrong credentials in the Authorization header; send 'Bearer <token>'")
    cookie = request.cookies.get(COOKIE_NAME)
    if cookie is None:
        AUTH_FAILURES.labels("missing").inc()
        return _unauthorized(
            "authentication required: send 'Authorization: Bearer <token>' or log in at /login"
        )
    principal = auth.session(cookie)
    if principal is None:
        AUTH_FAILURES.labels("bad_session").inc()
        return _unauthorized("session invalid or expired; log in again at /login")
    return principal


def _unauthorized(message: str) -> JSONResponse:
    response = error(401, message)
    response.headers["WWW-Authenticate"] = 'Bearer realm="shopwatch"'
    return response


class Api:
    """The ``/api`` endpoints over one :class:`~shopwatch.store.Store`.

    ``stats`` returns the pipeline's live figures (events/s, events, rejected, latency...);
    whatever it returns is passed through as ``runtime`` in ``/api/stats``.
    """

    def __init__(
        self,
        store: Store,
        auth: Auth,
        stats: Callable[[], Mapping[str, Any]] | None = None,
    ) -> None:
        self.store = store
        self.auth = auth
        self.stats = stats

    def routes(self) -> list[Route]:
        """The API's routes, each behind :func:`authenticated`."""
        guard = authenticated(self.auth)
        return [
            Route("/api/alerts", guard(self.alerts), methods=["GET"]),
            Route("/api/alerts/{alert_id}", guard(self.alert), methods=["GET"]),
            Route(
                "/api/alerts/{alert_id}/feedback",
                guard(self.alert_feedback),
                methods=["GET"],
            ),
            Route(
                "/api/alerts/{alert_id}/feedback",
                guard(self.add_feedback),
                methods=["POST"],
            ),
            Route("/api/stats", guard(self.summary), methods=["GET"]),
            Route("/api/incidents", guard(self.incidents), methods=["GET"]),
            Route("/api/decisions", guard(self.decisions), methods=["GET"]),
        ]

    async def alerts(self, request: Request) -> Response:
        """Alerts, newest first (event time), filtered by the query parameters."""
        params = _query(
            request, ("limit", "since", "until", "category", "severity", "rule_id", "entity")
        )
        since = parse_time("since", params["since"]) if params.get("since") else None
        until = parse_time("until", params["until"]) if params.get("until") else None
        found = await run_in_threadpool(
            self.store.alerts,
            limit=_limit(params),
            since=since,
            until=until,
            category=_choice(params, "category", CATEGORIES),
            severity=_choice(params, "severity", SEVERITIES),
            rule_id=params.get("rule_id") or None,
            entity_value=params.get("entity") or None,
        )
        return JSONResponse([alert.to_dict() for alert in found])

    async def alert(self, request: Request) -> Response:
        """One alert in the contract's shape, or a 404."""
        _query(request, ())
        alert_id = request.path_params["alert_id"]
        found = await run_in_threadpool(self.store.alert, alert_id)
        if found is None:
            return error(404, f"no alert with id {alert_id[:128]!r}")
        return JSONResponse(found.to_dict())

    async def alert_feedback(self, request: Request) -> Response:
        """The verdicts given on one alert, oldest first."""
        _query(request, ())
        alert_id = request.path_params["alert_id"]
        if await run_in_threadpool(self.store.alert, alert_id) is None:
            return error(404, f"no alert with id {alert_id[:128]!r}")
        return JSONResponse(await run_in_threadpool(self.store.feedback, alert_id))

    async def add_feedback(self, request: Request) -> Response:
        """Store an analyst's verdict; the analyst is the session's, or ``api`` with the token."""
        _query(request, ())
        alert_id = request.path_params["alert_id"]
        media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            return error(415, "send the feedback as JSON (Content-Type: application/json)")
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > _MAX_BODY:
                return error(413, f"feedback body is larger than {_MAX_BODY} bytes")
        try:
            given = FeedbackIn.model_validate_json(body or b"null")
        except ValidationError as err:
            problems = [
                {"loc": list(item["loc"]), "msg": item["msg"], "type": item["type"]}
                for item in err.errors(include_url=False, include_input=False)
            ]
            return error(
                422,
                'invalid feedback: send {"verdict": "true_positive" | "false_positive" | '
                '"benign", "note": "..."}',
                problems=problems,
            )
        if await run_in_threadpool(self.store.alert, alert_id) is None:
            return error(404, f"no alert with id {alert_id[:128]!r}")
        principal: Principal = request.state.principal
        analyst = principal.analyst if principal.via == "session" else "api"
        now = datetime.now(UTC)
        feedback_id = await run_in_threadpool(
            self.store.save_feedback, alert_id, given.verdict, analyst, given.note, now
        )
        log.info("feedback_saved", alert_id=alert_id, verdict=given.verdict, analyst=analyst)
        return JSONResponse(
            {
                "id": feedback_id,
                "alert_id": alert_id,
                "verdict": given.verdict,
                "analyst": analyst,
                "note": given.note,
                "created_at": now,
            },
            status_code=201,
        )

    async def summary(self, request: Request) -> Response:
        """Totals by category (all time and the last hour of wall-clock time) and runtime figures."""
        _query(request, ())
        now = datetime.now(UTC)
        total = await run_in_threadpool(self.store.count_alerts)
        by_category = await run_in_threadpool(self.store.alert_counts)
        last_hour = await run_in_threadpool(
            lambda: self.store.alert_counts(since=now - timedelta(hours=1))
        )
        return JSONResponse(
            {
                "alerts_total": total,
                "by_category": by_category,
                "last_hour": last_hour,
                "runtime": self._runtime(),
                "generated_at": now,
            }
        )

    async def incidents(self, request: Request) -> Response:
        """Incidents, most recently updated first; ``status`` filters (``open``...)."""
        params = _query(request, ("status", "limit"))
        found = await run_in_threadpool(
            self.store.incidents, status=params.get("status") or None, limit=_limit(params)
        )
        return JSONResponse([_record(item) for item in found])

    async def decisions(self, request: Request) -> Response:
        """Decisions; ``active_at`` (RFC 3339) or ``active=true`` keeps those in force then."""
        params = _query(request, ("active_at", "active"))
        active_at = None
        if params.get("active_at"):
            active_at = parse_time("active_at", params["active_at"])
        active = params.get("active", "").lower()
        if active not in ("", "true", "false", "1", "0"):
            raise BadRequest(f"active={params['active'][:16]!r} is not true or false")
        if active in ("true", "1") and active_at is None:
            active_at = datetime.now(UTC)
        found = await run_in_threadpool(self.store.decisions, active_at=active_at)
        return JSONResponse([_record(item) for item in found])

    def _runtime(self) -> dict[str, Any]:
        if self.stats is None:
            return {}
        try:
            return dict(self.stats())
        except Exception as err:  # a failing figure must not take the page down
            log.warning("runtime_stats_failed", error=f"{type(err).__name__}: {err}")
            return {}
