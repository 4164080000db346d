"""The JSON API over a real SQLite store: alerts and filters, feedback, stats, records."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from shopwatch.contract import Alert, Decision, Incident
from shopwatch.store import Store
from shopwatch.web import create_app
from tests.web.conftest import NOW, RUNTIME, TOKEN


@pytest.fixture()
def api(client: TestClient, bearer: dict[str, str]) -> TestClient:
    """The client, sending the bearer token."""
    client.headers.update(bearer)
    return client


def _ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [item["alert.id"] for item in response.json()]


def _newest_first(alerts: list[Alert]) -> list[Alert]:
    return sorted(alerts, key=lambda a: (a.timestamp, a.id), reverse=True)


def test_alerts_are_contract_json_newest_first(api: TestClient, alerts: list[Alert]) -> None:
    response = api.get("/api/alerts")
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body == [alert.to_dict() for alert in _newest_first(alerts)]
    first = body[0]
    assert first["rule.category"] == "account_takeover"
    assert first["@timestamp"].endswith("Z")
    assert first["entity"] == {"user.name": "maria.k@example.com", "source.ip": "103.75.180.2"}
    assert first["threat.technique.id"] == "T1078"


@pytest.mark.parametrize(
    ("query", "expected_rules"),
    [
        ({"category": "web_attack"}, ["web.xss_probe", "web.sqli_probe"]),
        ({"severity": "critical"}, ["ato.new_country_then_email_change", "payment.card_testing"]),
        ({"category": "web_attack", "severity": "high"}, ["web.sqli_probe"]),
        ({"rule_id": "ssh.brute_force"}, ["ssh.brute_force"]),
        ({"entity": "198.51.100.23"}, ["web.xss_probe", "web.sqli_probe"]),
        ({"entity": "maria.k@example.com"}, ["ato.new_country_then_email_change"]),
        ({"entity": "dev-8f2c41"}, ["payment.card_testing"]),
        ({"category": "dos"}, []),
        ({"limit": "2"}, ["ato.new_country_then_email_change", "ssh.brute_force"]),
    ],
)
def test_alert_filters(
    api: TestClient, alerts: list[Alert], query: dict[str, str], expected_rules: list[str]
) -> None:
    body = api.get("/api/alerts", params=query).json()
    assert [item["rule.id"] for item in body] == expected_rules


def test_since_is_inclusive_and_until_exclusive(api: TestClient, alerts: list[Alert]) -> None:
    ordered = _newest_first(alerts)
    pivot = ordered[2]  # the third newest
    since = pivot.timestamp.isoformat().replace("+00:00", "Z")
    assert _ids(api.get("/api/alerts", params={"since": since})) == [a.id for a in ordered[:3]]
    assert _ids(api.get("/api/alerts", params={"until": since})) == [a.id for a in ordered[3:]]
    # An offset other than Z means the same instant.
    shifted = (pivot.timestamp + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+02:00")
    assert _ids(api.get("/api/alerts", params={"since": shifted})) == [a.id for a in ordered[:3]]


def test_since_picks_up_a_new_alert(api: TestClient, store: Store, alerts: list[Alert]) -> None:
    newest = api.get("/api/alerts", params={"limit": 1}).json()[0]
    again = api.get("/api/alerts", params={"since": newest["@timestamp"]}).json()
    assert [a["alert.id"] for a in again] == [newest["alert.id"]]
    fresh = Alert.from_dict(
        {**newest, "alert.id": "fresh-1", "@timestamp": (NOW + timedelta(seconds=5)).isoformat()}
    )
    store.save_alerts([fresh])
    after = api.get("/api/alerts", params={"since": newest["@timestamp"]}).json()
    assert [a["alert.id"] for a in after] == ["fresh-1", newest["alert.id"]]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"since": "yesterday"}, "RFC 3339"),
        ({"since": "2024-11-29"}, "RFC 3339"),
        ({"since": "2024-11-29T08:30:00"}, "with Z or an offset"),
        ({"since": "2024-11-29T08:30:00 01:00"}, "%2B"),
        ({"since": "2024-13-45T08:30:00Z"}, "not a valid date-time"),
        ({"until": "1700000000"}, "RFC 3339"),
        ({"limit": "0"}, "1 to 1000"),
        ({"limit": "5000"}, "1 to 1000"),
        ({"limit": "ten"}, "whole number"),
        ({"category": "hacking"}, "credential_stuffing"),
        ({"severity": "urgent"}, "low, medium, high, critical"),
        ({"categry": "web_attack"}, "unknown query parameter 'categry'"),
        ({"entity": "x" * 300}, "longer than 256"),
    ],
)
def test_bad_query_parameters_are_400(api: TestClient, query: dict[str, str], message: str) -> None:
    response = api.get("/api/alerts", params=query)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_repeated_parameter_is_400(api: TestClient) -> None:
    response = api.get("/api/alerts?severity=high&severity=low")
    assert response.status_code == 400
    assert "given 2 times" in response.json()["error"]


def test_one_alert_and_404(api: TestClient, alerts: list[Alert]) -> None:
    card = next(a for a in alerts if a.category == "card_testing")
    response = api.get(f"/api/alerts/{card.id}")
    assert response.status_code == 200
    assert response.json() == card.to_dict()
    assert response.json()["details"]["decline_codes"] == {
        "incorrect_cvc": 21,
        "invalid_number": 16,
    }
    assert len(response.json()["event.ids"]) == 40

    missing = api.get("/api/alerts/0123456789abcdef0123")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no alert with id '0123456789abcdef0123'"}
    unknown_route = api.get("/api/nothing-here")
    assert unknown_route.status_code == 404 and "error" in unknown_route.json()


def test_feedback_with_the_token_is_stored_as_api(
    api: TestClient, store: Store, alerts: list[Alert]
) -> None:
    target = alerts[1]
    response = api.post(
        f"/api/alerts/{target.id}/feedback",
        json={"verdict": "true_positive", "note": "  confirmed in the WAF logs  "},
    )
    assert response.status_code == 201, response.text
    saved = store.feedback(target.id)
    assert len(saved) == 1
    assert saved[0]["verdict"] == "true_positive"
    assert saved[0]["analyst"] == "api"
    assert saved[0]["note"] == "confirmed in the WAF logs"
    assert response.json()["id"] == saved[0]["id"]
    listed = api.get(f"/api/alerts/{target.id}/feedback").json()
    assert [item["verdict"] for item in listed] == ["true_positive"]
    assert store.feedback(alerts[0].id) == []


def test_feedback_with_a_session_names_the_analyst(
    client: TestClient, store: Store, alerts: list[Alert]
) -> None:
    client.get("/login", params={"token": TOKEN, "analyst": "alice"})
    target = alerts[4]
    response = client.post(f"/api/alerts/{target.id}/feedback", json={"verdict": "false_positive"})
    assert response.status_code == 201
    assert [(f["verdict"], f["analyst"], f["note"]) for f in store.feedback(target.id)] == [
        ("false_positive", "alice", "")
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"verdict": "maybe"},
        {"verdict": "TRUE_POSITIVE"},
        {"note": "no verdict"},
        {"verdict": "benign", "note": "x" * 2001},
        {"verdict": "benign", "analyst": "mallory"},
        {"verdict": 1},
        [],
        "benign",
    ],
)
def test_bad_feedback_is_422(api: TestClient, store: Store, alerts: list[Alert], body: Any) -> None:
    response = api.post(f"/api/alerts/{alerts[0].id}/feedback", json=body)
    assert response.status_code == 422
    assert response.json()["error"].startswith("invalid feedback")
    assert response.json()["problems"]
    assert store.feedback() == []


def test_feedback_body_must_be_json(api: TestClient, store: Store, alerts: list[Alert]) -> None:
    url = f"/api/alerts/{alerts[0].id}/feedback"
    broken = api.post(url, content=b'{"verdict": ', headers={"Content-Type": "application/json"})
    assert broken.status_code == 422
    form = api.post(url, data={"verdict": "benign"})
    assert form.status_code == 415
    assert store.feedback() == []


def test_feedback_on_unknown_alert_is_404(api: TestClient, store: Store) -> None:
    response = api.post("/api/alerts/nope/feedback", json={"verdict": "benign"})
    assert response.status_code == 404
    assert store.feedback() == []


def test_stats(api: TestClient, alerts: list[Alert]) -> None:
    body = api.get("/api/stats").json()
    assert body["alerts_total"] == 8
    assert body["by_category"] == {
        "web_attack": 2,
        "account_takeover": 1,
        "brute_force": 1,
        "card_testing": 1,
        "credential_stuffing": 1,
        "scanner": 1,
        "scraping": 1,
    }
    assert "scraping" not in body["last_hour"]  # two days old
    # "last hour" is the server's wall clock; the sample alerts are dated from when the
    # tests were collected, so count what is still within the hour now (a long suite)
    since = datetime.now(UTC) - timedelta(hours=1)
    fresh = Counter(a.category for a in alerts if a.timestamp >= since + timedelta(seconds=5))
    maybe = Counter(a.category for a in alerts if a.timestamp >= since - timedelta(seconds=5))
    for category, n in body["last_hour"].items():
        assert fresh[category] <= n <= maybe[category], (category, n)
    assert sum(fresh.values()) <= sum(body["last_hour"].values()) <= sum(maybe.values())
    if datetime.now(UTC) - NOW < timedelta(minutes=10):  # collected just now: the exact figures
        assert body["last_hour"]["web_attack"] == 2
        assert sum(body["last_hour"].values()) == 7
    assert body["runtime"] == RUNTIME


def test_stats_without_or_with_a_failing_runtime(store: Store, alerts: list[Alert]) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("pipeline not started")

    for stats in (None, broken):
        app = create_app(store, token=TOKEN, stats=stats)
        with TestClient(app) as client:
            response = client.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status_code == 200
        assert response.json()["runtime"] == {}
        assert response.json()["alerts_total"] == 8


def test_incidents_and_decisions(api: TestClient, store: Store, alerts: list[Alert]) -> None:
    web = [a for a in alerts if a.entity.get("source.ip") == "198.51.100.23"]
    store.save_incident(
        Incident(
            id="inc-1",
            opened_at=web[0].timestamp,
            updated_at=web[1].timestamp,
            title="Web attacks from 198.51.100.23",
            severity="high",
            risk_score=80,
            entity={"source.ip": "198.51.100.23"},
            alert_ids=tuple(a.id for a in web),
        )
    )
    store.save_decision(
        Decision(
            id="dec-active",
            created_at=NOW - timedelta(minutes=30),
            action="block_ip",
            entity_field="source.ip",
            entity_value="198.51.100.23",
            reason="web attacks",
            expires_at=NOW + timedelta(hours=4),
            alert_id=web[0].id,
        )
    )
    store.save_decision(
        Decision(
            id="dec-expired",
            created_at=NOW - timedelta(days=2),
            action="block_ip",
            entity_field="source.ip",
            entity_value="66.249.66.1",
            reason="scraping",
            expires_at=NOW - timedelta(days=1),
        )
    )
    incidents = api.get("/api/incidents").json()
    assert len(incidents) == 1
    assert incidents[0]["id"] == "inc-1"
    assert incidents[0]["alert_ids"] == [a.id for a in web]
    assert incidents[0]["opened_at"].endswith("Z")
    assert api.get("/api/incidents", params={"status": "closed"}).json() == []

    assert {d["id"] for d in api.get("/api/decisions").json()} == {"dec-active", "dec-expired"}
    active = api.get("/api/decisions", params={"active": "true"}).json()
    assert [d["id"] for d in active] == ["dec-active"]
    assert active[0]["entity_value"] == "198.51.100.23"
    then = (NOW - timedelta(days=1, hours=12)).isoformat()
    assert [d["id"] for d in api.get("/api/decisions", params={"active_at": then}).json()] == [
        "dec-expired"
    ]
    assert api.get("/api/decisions", params={"active": "maybe"}).status_code == 400


def test_store_failure_is_503(tmp_path: Path) -> None:
    unmigrated = Store(f"sqlite:///{tmp_path / 'empty.db'}")
    app = create_app(unmigrated, token=TOKEN)
    with TestClient(app) as client:
        response = client.get("/api/alerts", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 503
    assert "shopwatch db upgrade" in response.json()["error"]
    unmigrated.close()


def test_health_and_metrics_need_no_auth(client: TestClient, bearer: dict[str, str]) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    client.get("/api/alerts")  # 401
    client.get("/api/alerts", headers=bearer)  # 200
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'shopwatch_web_requests_total{route="/api/alerts",status="200"}' in text
    assert 'shopwatch_web_requests_total{route="/api/alerts",status="401"}' in text
    assert 'shopwatch_web_auth_failures_total{reason="missing"}' in text
    assert "python_info" in text or "process_" in text  # the default registry
