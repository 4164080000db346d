"""Store fixtures: every store test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopwatch.contract import Alert
from shopwatch.store import Store

T0 = datetime(2024, 11, 29, 8, 30, 0, 123456, tzinfo=UTC)  # Black Friday, 08:30 UTC


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A URL of an empty database: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'shopwatch.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture()
def store(store_url: str) -> Iterator[Store]:
    """A migrated Store on ``store_url``."""
    with Store.open(store_url) as opened:
        yield opened


def make_alert(
    n: int,
    *,
    at: datetime = T0,
    rule_id: str = "auth.credential_stuffing",
    category: str = "credential_stuffing",
    severity: str = "high",
    ip: str | None = None,
    user: str | None = None,
    events: int = 30,
) -> Alert:
    """A realistic alert: several entity keys, many event ids, details with evidence."""
    ip = ip or f"203.0.113.{n % 250 + 1}"
    entity = {"source.ip": ip}
    if user is not None:
        entity["user.name"] = user
    return Alert(
        id=f"{rule_id}:{n:06d}",
        timestamp=at + timedelta(seconds=n),
        rule_id=rule_id,
        rule_name="Credential stuffing from one source",
        category=category,
        severity=severity,
        risk_score=40 + n % 60,
        entity=entity,
        event_ids=tuple(f"shop-auth.ndjson:{n * 1000 + i + 1}" for i in range(events)),
        message=f"{ip} failed to log in to {25 + n % 10} accounts within 10 minutes",
        technique_id="T1110.004",
        details={"accounts": 25 + n % 10, "window": "10m", "failures": 40 + n},
    )
