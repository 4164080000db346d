"""The database schema: SQLAlchemy Core tables, one definition for SQLite and PostgreSQL.

The Alembic scripts in ``store/migrations/versions`` create exactly these tables; a test
compares the migrated database against :data:`metadata` (autogenerate shows no diff).
Change a table here and add a migration in the same commit.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

__all__ = [
    "VERDICTS",
    "UTCDateTime",
    "alert_entities",
    "alerts",
    "checkpoints",
    "decisions",
    "feedback",
    "incident_alerts",
    "incidents",
    "metadata",
]

#: Analyst verdicts ``feedback.verdict`` accepts.
VERDICTS: Final[tuple[str, ...]] = ("true_positive", "false_positive", "benign")

metadata: Final = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend.

    PostgreSQL stores ``timestamptz``; SQLite stores naive UTC text (fixed width, so text
    order is time order). Naive datetimes are refused on the way in (a ``ValueError`` that
    the store reports as ``StoreError``); values always come out aware, in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert to UTC; strip the zone for SQLite, which cannot keep it."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise ValueError(f"expected a datetime, got {type(value).__name__} {value!r}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(
                f"naive datetime {value.isoformat()}: pass a timezone-aware (UTC) datetime"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Aware UTC whatever the backend returned (SQLite's naive values are UTC)."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


incidents: Final = Table(
    "incidents",
    metadata,
    Column("id", String, primary_key=True),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False, index=True),
    Column("title", Text, nullable=False),
    Column("severity", String, nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("status", String, nullable=False, index=True),
    Column("entity", JSON, nullable=False),
)

alerts: Final = Table(
    "alerts",
    metadata,
    Column("id", String, primary_key=True),
    Column("timestamp", UTCDateTime, nullable=False, index=True),
    Column("rule_id", String, nullable=False, index=True),
    Column("rule_name", Text, nullable=False),
    Column("category", String, nullable=False, index=True),
    Column("severity", String, nullable=False),
    Column("risk_score", Integer, nullable=False),
    Column("entity", JSON, nullable=False),
    Column("entity_key", String, nullable=True, index=True),
    Column("event_ids", JSON, nullable=False),
    Column("technique_id", String, nullable=True),
    Column("message", Text, nullable=False),
    Column("details", JSON, nullable=False),
    Column(
        "incident_id",
        String,
        ForeignKey("incidents.id", ondelete="SET NULL"),
        nullable=True,
        index=True,
    ),
    Column("stored_at", UTCDateTime, nullable=False),
)
"""``entity_key`` is the alert's first entity value (in ``ENTITY_FIELDS`` order)."""

alert_entities: Final = Table(
    "alert_entities",
    metadata,
    Column("alert_id", String, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("field", String, primary_key=True),
    Column("value", String, nullable=False, index=True),
)
"""Every (field, value) of every alert's entity: looking alerts up by any entity value."""

incident_alerts: Final = Table(
    "incident_alerts",
    metadata,
    Column("incident_id", String, ForeignKey("incidents.id", ondelete="CASCADE"), primary_key=True),
    Column("alert_id", String, ForeignKey("alerts.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_incident_alerts_alert_id", "alert_id"),
)

decisions: Final = Table(
    "decisions",
    metadata,
    Column("id", String, primary_key=True),
    Column("created_at", UTCDateTime, nullable=False, index=True),
    Column("action", String, nullable=False),
    Column("entity_field", String, nullable=False),
    Column("entity_value", String, nullable=False, index=True),
    Column("reason", Text, nullable=False),
    Column("expires_at", UTCDateTime, nullable=True, index=True),
    Column("origin", String, nullable=False),
    Column("alert_id", String, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
)

feedback: Final = Table(
    "feedback",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "alert_id",
        String,
        ForeignKey("alerts.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("verdict", String, nullable=False),
    Column("analyst", String, nullable=False),
    Column("note", Text, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    CheckConstraint("verdict IN ('true_positive', 'false_positive', 'benign')", name="verdict"),
)

checkpoints: Final = Table(
    "checkpoints",
    metadata,
    Column("name", String, primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
"""Opaque snapshots by name: detector state, source offsets."""
