"""Incidents, decisions, feedback and checkpoints, on both databases."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from shopwatch.contract import Decision, Incident
from shopwatch.errors import StoreError
from shopwatch.store import Store

from .conftest import T0, make_alert


def _incident(
    n: int, alert_ids: tuple[str, ...], *, status: str = "open", updated: int = 0
) -> Incident:
    return Incident(
        id=f"inc-{n}",
        opened_at=T0 + timedelta(minutes=n),
        updated_at=T0 + timedelta(minutes=n + updated),
        title=f"Credential stuffing campaign against {len(alert_ids)} accounts",
        severity="high",
        risk_score=81,
        status=status,
        entity={"source.ip": "203.0.113.9", "user.name": "dana@example.com"},
        alert_ids=alert_ids,
    )


def test_incidents_with_links(store: Store) -> None:
    alerts = [make_alert(n) for n in range(6)]
    store.save_alerts(alerts)
    ids = tuple(a.id for a in alerts)
    first = _incident(1, (ids[3], ids[0], ids[1]))
    second = _incident(2, (ids[4],), status="closed")
    store.save_incident(first)
    store.save_incident(second)
    assert store.incidents() == [second, first]  # most recently updated first
    assert store.incidents(status="open") == [first]
    assert store.incidents(limit=1) == [second]
    # upsert: new status, timestamps and links replace the old ones
    grown = _incident(1, (ids[3], ids[0], ids[1], ids[5]), status="acknowledged", updated=10)
    store.save_incident(grown)
    assert store.incidents() == [grown, second]
    assert store.incidents(status="open") == []
    with store._engine.connect() as conn:  # alerts point at their incident
        rows = dict(conn.exec_driver_sql("SELECT id, incident_id FROM alerts").all())
    assert rows[ids[5]] == "inc-1" and rows[ids[4]] == "inc-2" and rows[ids[2]] is None


def test_incident_linking_an_unstored_alert_is_refused(store: Store) -> None:
    store.save_alerts([make_alert(1)])
    with pytest.raises(StoreError, match="not stored: missing-alert"):
        store.save_incident(_incident(1, (make_alert(1).id, "missing-alert")))
    assert store.incidents() == []  # nothing half-written


def _decision(n: int, *, created: datetime, expires: datetime | None) -> Decision:
    return Decision(
        id=f"dec-{n}",
        created_at=created,
        action="block_ip",
        entity_field="source.ip",
        entity_value=f"198.51.100.{n}",
        reason="credential stuffing: 31 accounts in 10 minutes",
        expires_at=expires,
        origin="playbook",
        alert_id=f"auth.credential_stuffing:{n:06d}",
    )


def test_decisions_active_expired_revoked(store: Store) -> None:
    hour = timedelta(hours=1)
    permanent = _decision(1, created=T0, expires=None)
    expiring = _decision(2, created=T0 + timedelta(minutes=5), expires=T0 + hour)
    revoked = _decision(3, created=T0 + timedelta(minutes=10), expires=T0 + 24 * hour)
    future = _decision(4, created=T0 + 2 * hour, expires=T0 + 3 * hour)
    for d in (permanent, expiring, revoked, future):
        store.save_decision(d)
    assert store.decisions() == [future, revoked, expiring, permanent]  # newest first
    assert store.revoke_decision("dec-3", T0 + timedelta(minutes=30)) is True
    assert store.revoke_decision("dec-3", T0 + timedelta(minutes=40)) is False  # already
    assert store.revoke_decision("dec-unknown", T0) is False
    assert store.decisions(active_at=T0 + timedelta(minutes=20)) == [revoked, expiring, permanent]
    assert store.decisions(active_at=T0 + timedelta(minutes=30)) == [expiring, permanent]
    assert store.decisions(active_at=T0 + hour) == [permanent]  # expiry is exclusive
    assert store.decisions(active_at=T0 + 2 * hour) == [future, permanent]
    assert store.decisions(active_at=T0 - hour) == []
    # upsert by id: a longer block replaces the old one, the revocation stays
    longer = _decision(3, created=revoked.created_at, expires=T0 + 48 * hour)
    store.save_decision(longer)
    assert store.decisions()[1] == longer
    assert store.decisions(active_at=T0 + timedelta(minutes=20))[0] == longer
    assert longer not in store.decisions(active_at=T0 + 2 * hour)


def test_feedback(store: Store) -> None:
    a, b = make_alert(1), make_alert(2)
    store.save_alerts([a, b])
    at = datetime(2024, 11, 29, 12, 0, tzinfo=UTC)
    first = store.save_feedback(a.id, "true_positive", "erin", "confirmed with the customer", at=at)
    second = store.save_feedback(b.id, "false_positive", "frank", at=at + timedelta(minutes=1))
    third = store.save_feedback(a.id, "benign", "grace", "office NAT ✓")
    assert len({first, second, third}) == 3
    rows = store.feedback(a.id)
    assert [(r["id"], r["verdict"], r["analyst"], r["note"]) for r in rows] == [
        (first, "true_positive", "erin", "confirmed with the customer"),
        (third, "benign", "grace", "office NAT ✓"),
    ]
    assert rows[0]["created_at"] == at and rows[0]["alert_id"] == a.id
    assert rows[1]["created_at"].tzinfo is not None
    assert [r["id"] for r in store.feedback()] == [first, second, third]
    assert store.feedback("unknown") == []


def test_feedback_for_an_unknown_alert_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="no alert with id 'nope'"):
        store.save_feedback("nope", "true_positive", "erin")
    store.save_alerts([make_alert(1)])
    with pytest.raises(StoreError, match="unknown verdict 'maybe'"):
        store.save_feedback(make_alert(1).id, "maybe", "erin")
    assert store.feedback() == []


def test_checkpoints_round_trip_binary(store: Store) -> None:
    blob = bytes(range(256)) * 64 + b"\x00" * 10 + os.urandom(4096)
    assert store.load_checkpoint("engine") is None
    store.save_checkpoint("engine", blob)
    store.save_checkpoint("source:/var/log/nginx/access.log", b"offset=12345")
    assert store.load_checkpoint("engine") == blob
    store.save_checkpoint("engine", b"")
    assert store.load_checkpoint("engine") == b""
    assert store.load_checkpoint("source:/var/log/nginx/access.log") == b"offset=12345"
