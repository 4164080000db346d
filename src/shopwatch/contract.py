"""Field names and dtypes of the event contract, and the records shopwatch emits.

Every stage speaks these names verbatim (``"source.ip"``). A batch is a Polars frame whose
columns are a subset of :data:`EVENT_SCHEMA`; :func:`conform` turns any such frame into the
full schema (missing columns become typed nulls, unknown columns are dropped).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

import polars as pl

__all__ = [
    "ALERT_SCHEMA",
    "CATEGORIES",
    "ENTITY_FIELDS",
    "ENTITY_STRUCT",
    "EVENT_SCHEMA",
    "SEVERITIES",
    "SEVERITY_RANK",
    "TIMESTAMP",
    "Alert",
    "Category",
    "Decision",
    "Incident",
    "Severity",
    "alert_rows_to_dicts",
    "conform",
    "empty_alerts",
    "empty_events",
    "stable_id",
]

TIMESTAMP: Final = pl.Datetime("us", "UTC")

Category = Literal[
    "web_attack",
    "scanner",
    "scraping",
    "brute_force",
    "credential_stuffing",
    "account_takeover",
    "card_testing",
    "payment_fraud",
    "promo_abuse",
    "inventory_hoarding",
    "data_exfiltration",
    "threat_intel",
    "dos",
    "network",
    "host",
    "vendor_risk",
    "data_leak",
    "anomaly",
]
CATEGORIES: Final[tuple[str, ...]] = get_args(Category)

Severity = Literal["low", "medium", "high", "critical"]
SEVERITIES: Final[tuple[str, ...]] = get_args(Severity)
SEVERITY_RANK: Final = {name: rank for rank, name in enumerate(SEVERITIES)}

_S = pl.String()
_I = pl.Int64()
_F = pl.Float64()

#: Every column a batch may carry, in a fixed order. Extensions beyond the contract's own
#: list are ECS names too (``message``, ``process.*``, ``log.*``, ``event.ingested``...).
EVENT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "@timestamp": TIMESTAMP,
    "event.id": _S,
    "event.dataset": _S,
    "event.kind": _S,
    "event.category": _S,
    "event.action": _S,
    "event.outcome": _S,
    "event.reason": _S,
    "event.duration": _I,
    "event.ingested": TIMESTAMP,
    "event.original": _S,
    "message": _S,
    "log.file.path": _S,
    "log.syslog.hostname": _S,
    "log.syslog.appname": _S,
    "log.syslog.priority": _I,
    "process.name": _S,
    "process.pid": _I,
    "client.ip": _S,
    "source.ip": _S,
    "source.port": _I,
    "source.domain": _S,
    "source.geo.country_iso_code": _S,
    "source.as.number": _I,
    "source.as.organization.name": _S,
    "source.as.type": _S,  # the network's use: hosting, residential, cellular, business, ...
    "destination.ip": _S,
    "destination.port": _I,
    "destination.domain": _S,
    "user.id": _S,
    "user.name": _S,
    "user.roles": _S,
    "user_agent.original": _S,
    "user_agent.name": _S,
    "user_agent.os.name": _S,
    "user_agent.device.name": _S,
    "user_agent.bot.name": _S,
    "user_agent.bot.verified": pl.Boolean(),
    "user_agent.headless": pl.Boolean(),
    "threat.indicator.feed": _S,
    "threat.indicator.type": _S,
    "threat.indicator.matched": _S,
    "threat.indicator.confidence": _I,
    "source.reputation": _I,
    # Names of the YARA rules that matched http.request.body.content, comma-joined.
    "threat.yara.rules": _S,
    "url.original": _S,
    "url.path": _S,
    "url.query": _S,
    "url.full": _S,
    "url.domain": _S,
    "http.version": _S,
    "http.request.method": _S,
    "http.request.referrer": _S,
    "http.request.bytes": _I,
    "http.request.body.content": _S,
    "http.response.status_code": _I,
    "http.response.bytes": _I,
    "host.name": _S,
    "service.name": _S,
    "network.transport": _S,
    "network.bytes": _I,
    "network.packets": _I,
    "network.iana_number": _I,
    "cloud.account.id": _S,
    "observer.ingress.interface.name": _S,
    "shop.session.id": _S,
    "shop.device.id": _S,
    # The shop platform (content/platforms) whose login endpoint an access-log request
    # matched; set with event.action "login" by shopwatch.enrich.logins.
    "shop.platform": _S,
    "shop.product.id": _S,
    "shop.product.price": _F,
    "shop.cart.quantity": _I,
    "shop.order.id": _S,
    "shop.order.amount": _F,
    "shop.order.currency": _S,
    "shop.order.item_count": _I,
    "shop.shipping.country": _S,
    "shop.billing.country": _S,
    "shop.shipping.address_hash": _S,
    "shop.shipping.method": _S,
    "shop.promo.code": _S,
    "shop.payment.amount": _F,
    "shop.payment.currency": _S,
    "shop.payment.method": _S,
    "shop.payment.card.bin": _S,
    "shop.payment.card.last4": _S,
    "shop.payment.card.fingerprint": _S,
    "shop.payment.card.country": _S,
    "shop.payment.decline_code": _S,
    "shop.data.object": _S,
    "shop.data.records": _I,
    "shop.vendor.name": _S,
    "shop.metric.name": _S,
    "shop.metric.value": _F,
    # Optional: how many observations a metric sample summarises (requests behind a latency
    # percentile, logins behind a failure rate).
    "shop.metric.count": _I,
    # Geo/ASN of client.ip (the original client behind a proxy or CDN), as for source.ip.
    "client.geo.country_iso_code": _S,
    "client.as.number": _I,
    "client.as.organization.name": _S,
    "client.as.type": _S,
    # What the account's profile knew before the event (shopwatch.detect.profiles): days
    # since the account was first seen, and whether each value is new to the account.
    "shop.profile.known_days": _F,
    "shop.profile.new_device": pl.Boolean(),
    "shop.profile.new_country": pl.Boolean(),
    "shop.profile.new_as": pl.Boolean(),
    "shop.profile.new_address": pl.Boolean(),
    "shop.profile.new_card": pl.Boolean(),
}

#: The keys an alert's ``entity`` may carry (contract: "Output: alerts").
ENTITY_FIELDS: Final[tuple[str, ...]] = (
    "source.ip",
    "user.name",
    "shop.payment.card.fingerprint",
    "shop.device.id",
    "shop.session.id",
    "shop.vendor.name",
    "host.name",
    "service.name",
)
ENTITY_STRUCT: Final = pl.Struct({name: pl.String() for name in ENTITY_FIELDS})

#: Alert rows as detectors return them. ``details`` is a JSON object (string) of evidence.
ALERT_SCHEMA: Final[dict[str, pl.DataType]] = {
    "alert.id": pl.String(),
    "@timestamp": TIMESTAMP,
    "rule.id": pl.String(),
    "rule.name": pl.String(),
    "rule.category": pl.String(),
    "severity": pl.String(),
    "risk_score": pl.Int64(),
    "entity": ENTITY_STRUCT,
    "event.ids": pl.List(pl.String()),
    "threat.technique.id": pl.String(),
    "message": pl.String(),
    "details": pl.String(),
}


def empty_events() -> pl.DataFrame:
    """A zero-row batch with the full event schema."""
    return pl.DataFrame(schema=EVENT_SCHEMA)


def empty_alerts() -> pl.DataFrame:
    """A zero-row alert frame; every detector returns this shape.

    >>> empty_alerts().columns[:3]
    ['alert.id', '@timestamp', 'rule.id']
    """
    return _EMPTY_ALERTS.clear()  # a fresh frame; building one from the schema costs 200x more


_EMPTY_ALERTS: Final = pl.DataFrame(schema=ALERT_SCHEMA)


def conform(frame: pl.DataFrame, schema: dict[str, pl.DataType] = EVENT_SCHEMA) -> pl.DataFrame:
    """Cast ``frame`` to ``schema``: missing columns become nulls, extra columns are dropped.

    Helper columns (names starting with ``_``) are dropped too. Casting is strict only in
    the sense Polars gives: a value that cannot be cast becomes null.
    """
    exprs = []
    for name, dtype in schema.items():
        if name in frame.columns:
            col = pl.col(name)
            exprs.append(col if frame.schema[name] == dtype else col.cast(dtype, strict=False))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def stable_id(*parts: object) -> str:
    """A deterministic 20-hex-digit id from ``parts`` (replay repeats ids exactly).

    >>> stable_id("auth.brute_force", "1.2.3.4", 0) == stable_id("auth.brute_force", "1.2.3.4", 0)
    True
    """
    text = "\x1f".join("" if p is None else str(p) for p in parts)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=10).hexdigest()


def _iso(ts: datetime) -> str:
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alert_rows_to_dicts(alerts: pl.DataFrame) -> list[dict[str, Any]]:
    """Alert rows in the contract's JSON shape (entity without null keys, details decoded)."""
    out: list[dict[str, Any]] = []
    for row in alerts.iter_rows(named=True):
        out.append(Alert.from_row(row).to_dict())
    return out


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert, as stored and served; field names follow the contract."""

    id: str
    timestamp: datetime
    rule_id: str
    rule_name: str
    category: str
    severity: str
    risk_score: int
    entity: dict[str, str]
    event_ids: tuple[str, ...]
    message: str
    technique_id: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Alert:
        """Build from one ALERT_SCHEMA row (as ``iter_rows(named=True)`` yields it)."""
        entity = {k: v for k, v in (row.get("entity") or {}).items() if v is not None}
        details = row.get("details")
        return cls(
            id=row["alert.id"],
            timestamp=row["@timestamp"],
            rule_id=row["rule.id"],
            rule_name=row["rule.name"],
            category=row["rule.category"],
            severity=row["severity"],
            risk_score=int(row["risk_score"]),
            entity=entity,
            event_ids=tuple(row.get("event.ids") or ()),
            message=row["message"],
            technique_id=row.get("threat.technique.id"),
            details=json.loads(details) if details else {},
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Alert:
        """Inverse of :meth:`to_dict`."""
        ts = data["@timestamp"]
        if isinstance(ts, str):
            ts = datetime.fromisoformat(ts.replace("Z", "+00:00"))
        return cls(
            id=data["alert.id"],
            timestamp=ts,
            rule_id=data["rule.id"],
            rule_name=data["rule.name"],
            category=data["rule.category"],
            severity=data["severity"],
            risk_score=int(data["risk_score"]),
            entity=dict(data.get("entity") or {}),
            event_ids=tuple(data.get("event.ids") or ()),
            message=data["message"],
            technique_id=data.get("threat.technique.id"),
            details=dict(data.get("details") or {}),
        )

    def to_dict(self) -> dict[str, Any]:
        """The contract's alert object (JSON-ready)."""
        out: dict[str, Any] = {
            "alert.id": self.id,
            "@timestamp": _iso(self.timestamp),
            "rule.id": self.rule_id,
            "rule.name": self.rule_name,
            "rule.category": self.category,
            "severity": self.severity,
            "risk_score": self.risk_score,
            "entity": self.entity,
            "event.ids": list(self.event_ids),
            "message": self.message,
        }
        if self.technique_id:
            out["threat.technique.id"] = self.technique_id
        if self.details:
            out["details"] = self.details
        return out


@dataclass(frozen=True, slots=True)
class Incident:
    """A group of related alerts about one entity or campaign (correlation fills these)."""

    id: str
    opened_at: datetime
    updated_at: datetime
    title: str
    severity: str
    risk_score: int
    status: str = "open"
    entity: dict[str, str] = field(default_factory=dict)
    alert_ids: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    """A response taken on an entity (block an IP, freeze an account), valid until expiry."""

    id: str
    created_at: datetime
    action: str
    entity_field: str
    entity_value: str
    reason: str
    expires_at: datetime | None = None
    origin: str = "playbook"
    alert_id: str | None = None
