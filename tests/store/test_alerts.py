"""Alerts: round trip, idempotent saves, filters, ordering and counts, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import polars as pl
import pytest

from shopwatch.contract import ALERT_SCHEMA, Alert
from shopwatch.errors import StoreError
from shopwatch.store import Store

from .conftest import T0, make_alert


def _rich_alert() -> Alert:
    """An account-takeover alert with every field filled, 1,000 event ids and unicode."""
    return Alert(
        id="ato.new_device_then_email_change:7f3a9c01d2e4b5a6c7d8",
        timestamp=datetime(2024, 11, 29, 10, 15, 42, 987654, tzinfo=timezone(timedelta(hours=1))),
        rule_id="ato.new_device_then_email_change",
        rule_name="Login from a new device followed by an e-mail change",
        category="account_takeover",
        severity="critical",
        risk_score=93,
        entity={
            "user.name": "zoë.müller@example.de",
            "source.ip": "2001:db8:85a3::8a2e:370:7334",
            "shop.device.id": "dev-4f9c2e",
            "shop.session.id": "sess-Ω-81b2",
        },
        event_ids=tuple(f"shop-auth-2024-11-29.ndjson:{i}" for i in range(1, 1001)),
        message="zoë.müller@example.de logged in from a new device in 東京 and changed the e-mail within 4 min — “takeover”",
        technique_id="T1078",
        details={
            "new_device": True,
            "gap_s": 238.5,
            "countries": ["DE", "JP"],
            "previous_email_hash": "9b74c9897bac770ffc029102a200c5de",
            "nested": {"score_parts": {"device": 40, "geo": 35, "email": 18}, "none": None},
        },
    )


def test_round_trip_equals_the_original(store: Store) -> None:
    original = _rich_alert()
    plain = make_alert(1, user="alice@example.com")
    assert store.save_alerts([original, plain]) == 2
    loaded = store.alert(original.id)
    assert loaded == original
    assert loaded is not None
    assert loaded.timestamp.utcoffset() == timedelta(0)  # comes out in UTC
    assert loaded.timestamp == datetime(2024, 11, 29, 9, 15, 42, 987654, tzinfo=UTC)
    assert len(loaded.event_ids) == 1000
    assert loaded.to_dict() == original.to_dict()
    assert store.alert(plain.id) == plain
    assert store.alert("no-such-id") is None


def test_alerts_from_detector_rows_round_trip(store: Store) -> None:
    """Rows shaped as detectors emit them (ALERT_SCHEMA frame) survive save and load."""
    frame = pl.DataFrame(
        {
            "alert.id": ["a1", "a2"],
            "@timestamp": [T0, T0 + timedelta(minutes=3)],
            "rule.id": ["web.sqli_probe", "auth.brute_force_ip"],
            "rule.name": ["SQL injection probe", "Brute force from one IP"],
            "rule.category": ["web_attack", "brute_force"],
            "severity": ["high", "medium"],
            "risk_score": [70, 55],
            "entity": [
                {"source.ip": "198.51.100.23", "user.name": None},
                {"source.ip": "198.51.100.24", "user.name": "bob"},
            ],
            "event.ids": [["access.log:17", "access.log:18"], ["auth.log:3"]],
            "threat.technique.id": ["T1190", None],
            "message": ["SQL injection probe on /search", "40 failed logins"],
            "details": ['{"matched": "union select"}', None],
        },
        schema=ALERT_SCHEMA,
    )
    alerts = [Alert.from_row(row) for row in frame.iter_rows(named=True)]
    assert store.save_alerts(alerts) == 2
    assert sorted(store.alerts(), key=lambda a: a.id) == alerts
    first = store.alert("a1")
    assert first is not None and first.entity == {"source.ip": "198.51.100.23"}


def test_saving_again_is_idempotent(store: Store) -> None:
    batch = [make_alert(n) for n in range(50)]
    assert store.save_alerts(batch) == 50
    assert store.save_alerts(batch) == 0
    changed = [make_alert(n, severity="low") for n in range(40, 60)]  # 10 old ids, 10 new
    assert store.save_alerts(changed + changed[:5]) == 10  # repeats inside a batch too
    assert store.count_alerts() == 60
    first = store.alert(make_alert(45).id)
    assert first is not None and first.severity == "high"  # the stored one is kept
    assert store.save_alerts([]) == 0


def test_large_batch_in_one_call(store: Store) -> None:
    batch = [make_alert(n, events=200, user=f"user{n}@example.com") for n in range(5000)]
    assert store.save_alerts(batch) == 5000
    assert store.count_alerts() == 5000
    assert store.alerts(limit=1)[0] == batch[-1]
    assert store.alerts(entity_value="user4321@example.com") == [batch[4321]]


def test_filters_and_newest_first(store: Store) -> None:
    alerts = [
        make_alert(0, at=T0, ip="203.0.113.9", user="carol@example.com"),
        make_alert(1, at=T0, rule_id="web.sqli_probe", category="web_attack", severity="medium"),
        make_alert(2, at=T0 + timedelta(hours=1), ip="203.0.113.9"),
        make_alert(
            3,
            at=T0 + timedelta(hours=2),
            category="card_testing",
            rule_id="pay.card_testing",
            severity="critical",
            ip="192.0.2.77",
            user="carol@example.com",
        ),
        make_alert(4, at=T0 - timedelta(days=1), severity="low"),
    ]
    store.save_alerts(alerts)
    by_time = sorted(alerts, key=lambda a: (a.timestamp, a.id), reverse=True)
    assert store.alerts() == by_time
    assert store.alerts(limit=2) == by_time[:2]
    assert store.alerts(limit=0) == []
    since = T0 + timedelta(hours=1)
    assert [a.id for a in store.alerts(since=since)] == [alerts[3].id, alerts[2].id]
    assert [a.id for a in store.alerts(until=T0)] == [alerts[4].id]
    assert [a.id for a in store.alerts(since=T0, until=since)] == [alerts[1].id, alerts[0].id]
    # the same instant in another zone filters the same way
    cet = timezone(timedelta(hours=1))
    assert store.alerts(since=since.astimezone(cet)) == store.alerts(since=since)
    assert [a.id for a in store.alerts(category="web_attack")] == [alerts[1].id]
    assert [a.id for a in store.alerts(severity="critical")] == [alerts[3].id]
    assert [a.id for a in store.alerts(rule_id="pay.card_testing")] == [alerts[3].id]
    # entity_value matches any key of the entity, not only the first
    assert [a.id for a in store.alerts(entity_value="203.0.113.9")] == [alerts[2].id, alerts[0].id]
    assert [a.id for a in store.alerts(entity_value="carol@example.com")] == [
        alerts[3].id,
        alerts[0].id,
    ]
    assert [
        a.id for a in store.alerts(entity_value="carol@example.com", category="card_testing")
    ] == [alerts[3].id]
    assert store.alerts(entity_value="nobody") == []


def test_counts_by_category(store: Store) -> None:
    store.save_alerts(
        [make_alert(n, at=T0 + timedelta(minutes=n)) for n in range(6)]
        + [
            make_alert(
                n, category="web_attack", rule_id="web.xss_probe", at=T0 + timedelta(minutes=n)
            )
            for n in range(3)
        ]
        + [make_alert(0, category="dos", rule_id="net.syn_flood", at=T0 - timedelta(hours=1))]
    )
    assert store.count_alerts() == 10
    counts = store.alert_counts()
    assert counts == {"credential_stuffing": 6, "web_attack": 3, "dos": 1}
    assert list(counts) == ["credential_stuffing", "web_attack", "dos"]  # most first
    assert store.alert_counts(since=T0 + timedelta(minutes=2)) == {
        "credential_stuffing": 4,
        "web_attack": 1,
    }


def test_naive_timestamps_are_refused(store: Store) -> None:
    naive = make_alert(1, at=datetime(2024, 11, 29, 8, 0))
    with pytest.raises(StoreError, match="naive datetime"):
        store.save_alerts([naive])
    with pytest.raises(StoreError, match="naive datetime"):
        store.alerts(since=datetime(2024, 1, 1))
    assert store.count_alerts() == 0
