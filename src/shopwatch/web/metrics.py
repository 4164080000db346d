"""Prometheus metrics of the web UI and API (default registry, registered once on import)."""

from __future__ import annotations

from typing import Final

from prometheus_client import Counter

__all__ = ["AUTH_FAILURES", "LOGINS", "REQUESTS"]

REQUESTS: Final = Counter(
    "shopwatch_web_requests_total",
    "HTTP requests answered by the web UI and API, by route template and status code.",
    ["route", "status"],
)
AUTH_FAILURES: Final = Counter(
    "shopwatch_web_auth_failures_total",
    "API requests refused for authentication (missing, bad_token, bad_session).",
    ["reason"],
)
LOGINS: Final = Counter(
    "shopwatch_web_logins_total",
    "Login attempts on /login by outcome (success, failure).",
    ["outcome"],
)
