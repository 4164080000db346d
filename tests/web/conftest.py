"""Web fixtures: a real SQLite store filled with realistic alerts, the app and a client."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from starlette.applications import Starlette
from starlette.testclient import TestClient

from shopwatch.contract import Alert, stable_id
from shopwatch.store import Store
from shopwatch.web import create_app

TOKEN = "test-token-7f3a9c1e5b2d4f60"
RUNTIME = {
    "events_per_s": 1234.5,
    "events": 987_654,
    "rejected": 12,
    "latency_p99_ms": 85.0,
}
# Recent alerts are placed relative to the wall clock so that "last hour" counts see them.
NOW = datetime.now(UTC).replace(microsecond=0)


def make_alert(
    rule_id: str,
    rule_name: str,
    category: str,
    severity: str,
    *,
    at: datetime,
    entity: dict[str, str],
    message: str,
    events: int,
    risk: int,
    technique: str | None = None,
    details: dict[str, Any] | None = None,
    source: str = "access.log",
) -> Alert:
    """An alert as a detector would emit it (derived id, event ids from one log file)."""
    first = int(at.timestamp()) % 100_000
    return Alert(
        id=stable_id(rule_id, *entity.values(), at.isoformat()),
        timestamp=at,
        rule_id=rule_id,
        rule_name=rule_name,
        category=category,
        severity=severity,
        risk_score=risk,
        entity=entity,
        event_ids=tuple(f"{source}:{first + i}" for i in range(events)),
        message=message,
        technique_id=technique,
        details=details or {},
    )


def sample_alerts(now: datetime = NOW) -> list[Alert]:
    """Eight alerts of a morning at a shop: stuffing, SQLi, XSS, scanner, card testing..."""
    return [
        make_alert(
            "auth.credential_stuffing",
            "Credential stuffing from one source",
            "credential_stuffing",
            "high",
            at=now - timedelta(minutes=41),
            entity={"source.ip": "203.0.113.7"},
            message="203.0.113.7 failed to log in to 41 accounts within 10 minutes",
            events=63,
            risk=78,
            technique="T1110.004",
            details={"accounts": 41, "failures": 63, "window": "10m"},
            source="shop-auth.ndjson",
        ),
        make_alert(
            "web.sqli_probe",
            "SQL injection probe",
            "web_attack",
            "high",
            at=now - timedelta(minutes=33),
            entity={"source.ip": "198.51.100.23"},
            message="198.51.100.23 sent SQL injection payloads to /search (3 requests)",
            events=3,
            risk=72,
            technique="T1190",
            details={
                "url.original": "/search?q=1' UNION SELECT email,password FROM customers--",
                "http.response.status_code": 200,
            },
        ),
        make_alert(
            "web.xss_probe",
            "Cross-site scripting probe",
            "web_attack",
            "medium",
            at=now - timedelta(minutes=27),
            entity={"source.ip": "198.51.100.23"},
            message='198.51.100.23 requested /product?name=<script>alert("xss")</script>',
            events=1,
            risk=55,
            technique="T1189",
            details={"url.original": '/product?name=<script>alert("xss")</script>'},
        ),
        make_alert(
            "web.scanner_user_agent",
            "Vulnerability scanner user agent",
            "scanner",
            "medium",
            at=now - timedelta(minutes=19),
            entity={"source.ip": "192.0.2.44"},
            message="192.0.2.44 scanned the shop with sqlmap/1.7.2 (312 requests)",
            events=312,
            risk=50,
            technique="T1595.002",
            details={"user_agent.original": "sqlmap/1.7.2#stable (https://sqlmap.org)"},
        ),
        make_alert(
            "payment.card_testing",
            "Card testing: many small declined authorizations",
            "card_testing",
            "critical",
            at=now - timedelta(minutes=12),
            entity={"source.ip": "45.155.205.9", "shop.device.id": "dev-8f2c41"},
            message="45.155.205.9 tried 29 cards in 6 minutes; 37 of 40 authorizations declined",
            events=40,
            risk=92,
            details={
                "distinct_cards": 29,
                "declines": 37,
                "decline_codes": {"incorrect_cvc": 21, "invalid_number": 16},
                "max_amount": 1.0,
            },
            source="shop-payments.ndjson",
        ),
        make_alert(
            "ssh.brute_force",
            "SSH brute force",
            "brute_force",
            "medium",
            at=now - timedelta(minutes=7),
            entity={"source.ip": "185.220.101.4", "host.name": "web-01"},
            message="185.220.101.4 failed 120 SSH logins on web-01 within 5 minutes",
            events=120,
            risk=60,
            technique="T1110.001",
            details={"failures": 120, "users": ["root", "admin", "ubuntu"]},
            source="auth.log",
        ),
        make_alert(
            "ato.new_country_then_email_change",
            "Account takeover: new country, then e-mail change",
            "account_takeover",
            "critical",
            at=now - timedelta(minutes=3),
            entity={"user.name": "maria.k@example.com", "source.ip": "103.75.180.2"},
            message="maria.k@example.com logged in from VN and changed the e-mail within 4 minutes",
            events=5,
            risk=95,
            technique="T1078",
            details={"steps": ["login", "email_change", "payment_method_add"], "country": "VN"},
            source="shop-auth.ndjson",
        ),
        make_alert(
            "bot.catalog_scraping",
            "Catalog scraping",
            "scraping",
            "low",
            at=now - timedelta(days=2),
            entity={"source.ip": "66.249.66.1"},
            message="66.249.66.1 fetched 4,210 product pages in one hour",
            events=1000,
            risk=30,
            details={"pages": 4210},
        ),
    ]


@pytest.fixture(autouse=True)
def _default_logging() -> Iterator[None]:
    """structlog's defaults: another test may have bound logging to a stream closed since."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**saved)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    """A migrated SQLite store on a file, empty."""
    with Store.open(f"sqlite:///{tmp_path / 'shopwatch.db'}") as opened:
        yield opened


@pytest.fixture()
def alerts(store: Store) -> list[Alert]:
    """The sample alerts, stored."""
    items = sample_alerts()
    assert store.save_alerts(items) == len(items)
    return items


@pytest.fixture()
def app(store: Store, alerts: list[Alert]) -> Starlette:
    """The web app over the filled store, with fixed runtime figures."""
    return create_app(store, token=TOKEN, stats=lambda: dict(RUNTIME))


@pytest.fixture()
def client(app: Starlette) -> Iterator[TestClient]:
    """A client without credentials."""
    with TestClient(app, base_url="http://127.0.0.1") as test_client:
        yield test_client


@pytest.fixture()
def bearer() -> dict[str, str]:
    """The Authorization header with the right token."""
    return {"Authorization": f"Bearer {TOKEN}"}
