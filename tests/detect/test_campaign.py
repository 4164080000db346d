"""One alert per campaign: a rule's alerts for many keys fold into one, updated as it grows."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import ALERT_SCHEMA, conform
from shopwatch.detect.registry import build
from shopwatch.pipeline.engine import Engine

T0 = datetime(2026, 3, 5, 10, 0, tzinfo=UTC)


def rule(campaign: dict[str, str] | None = None) -> Any:
    raw: dict[str, Any] = {
        "id": "test.per_address",
        "kind": "threshold",
        "category": "credential_stuffing",
        "where": {"event.action": "login", "event.outcome": "failure"},
        "group_by": ["source.ip"],
        "count": {"at_least": 3, "within": "5m"},
    }
    if campaign is not None:
        raw["campaign"] = campaign
    return build(raw)


def attempts(
    addresses: int, *, start: timedelta = timedelta(0), gap_s: float = 2.0
) -> pl.DataFrame:
    """Three failed logins from each of ``addresses`` exits, one exit after another."""
    rows = []
    for a in range(addresses):
        for k in range(3):
            at = T0 + start + timedelta(seconds=gap_s * (3 * a + k))
            rows.append(
                {
                    "@timestamp": at,
                    "event.id": f"e{a}-{k}-{start.total_seconds():.0f}",
                    "event.action": "login",
                    "event.outcome": "failure",
                    "source.ip": f"198.51.100.{a + 1}",
                }
            )
    return conform(pl.DataFrame(rows))


def named(alerts: pl.DataFrame) -> set[str]:
    out = set()
    for entity, details in alerts.select("entity", "details").iter_rows():
        out.add(entity["source.ip"])
        out.update(json.loads(details).get("members", {}).get("source.ip", []))
    return out


def run(engine: Engine, frame: pl.DataFrame, step: int) -> pl.DataFrame:
    parts = [engine.process(frame.slice(i, step)) for i in range(0, frame.height, step)]
    parts.append(engine.flush())
    return pl.concat([p for p in parts if p.height])


def test_without_campaign_every_key_alerts() -> None:
    alerts = run(Engine([rule()]), attempts(40), 10)
    assert alerts.height == 40


@pytest.mark.parametrize(
    "step", [1, 7, 1000], ids=["event-per-batch", "small-batches", "one-batch"]
)
def test_forty_exits_make_one_alert_and_a_few_updates_naming_all(step: int) -> None:
    alerts = run(Engine([rule({"within": "1h", "hold": "1m"})]), attempts(40), step)
    assert 2 <= alerts.height <= 6  # four minutes of attack: the first alert, a few updates
    first = alerts.row(0, named=True)
    assert first["entity"]["source.ip"] == "198.51.100.1"
    assert named(alerts) == {f"198.51.100.{a + 1}" for a in range(40)}
    last = json.loads(alerts["details"][-1])
    assert last["campaign"]["id"] == first["alert.id"] and last["campaign"]["alerts"] == 40
    assert len(alerts["event.ids"][-1]) >= 40  # the campaign's evidence
    # At most one update a minute; the last may be the end of the replay's.
    times = alerts["@timestamp"].to_list()[:-1]
    assert all(b - a >= timedelta(minutes=1) for a, b in itertools.pairwise(times))


def test_a_quiet_hour_ends_the_campaign() -> None:
    engine = Engine([rule({"within": "1h", "hold": "1m"})])
    frame = pl.concat([attempts(5), attempts(5, start=timedelta(hours=2))])
    alerts = run(engine, frame, 1000)
    firsts = [json.loads(d)["campaign"] for d in alerts["details"]]
    started = {c["id"] for c in firsts}
    assert len(started) == 2  # a second campaign, with its own first alert


def test_an_update_waits_for_a_later_batch_or_the_end_of_the_replay() -> None:
    engine = Engine([rule({"within": "1h", "hold": "10m"})])
    first = engine.process(attempts(3))
    assert first.height == 1  # the first alert at once; the two others joined it
    assert engine.flush().height == 1  # the replay ended: the update is raised


def test_a_restart_keeps_the_campaign() -> None:
    engine = Engine([rule({"within": "1h", "hold": "1m"})])
    engine.process(attempts(3))
    again = Engine([rule({"within": "1h", "hold": "1m"})])
    again.restore(engine.snapshot())
    later = again.process(attempts(3, start=timedelta(minutes=10)))
    details = [json.loads(d)["campaign"] for d in later["details"]]
    assert later.height == 1 and details[0].get("update") == 1  # an update, not a new campaign


def test_bad_campaign_settings_are_refused() -> None:
    from shopwatch.errors import ContentError

    with pytest.raises(ContentError, match="campaign"):
        rule({"within": "1h", "hold": "soon"})


def test_a_full_campaign_starts_another_so_no_attacker_hides_behind_a_decoy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from shopwatch.detect import campaign

    monkeypatch.setattr(campaign, "MAX_MEMBERS", 5)
    alerts = run(Engine([rule({"within": "1h", "hold": "1m"})]), attempts(12), 1000)
    started = {json.loads(d)["campaign"]["id"] for d in alerts["details"]}
    assert len(started) >= 3
    assert named(alerts) == {f"198.51.100.{a + 1}" for a in range(12)}


def test_an_attack_that_grows_riskier_is_raised_again_at_its_risk() -> None:
    """A decoy keeps the campaign open; an alert riskier than any raised brings an update."""
    from shopwatch.detect.campaign import CampaignFolder
    from shopwatch.detect.state import KeyedState

    detector = rule({"within": "1h", "hold": "1m"})
    folder = CampaignFolder(detector)
    state = KeyedState(detector.keys)

    def alert(minute: int, ip: str, risk: int) -> pl.DataFrame:
        row = {
            "alert.id": f"a{minute}",
            "@timestamp": T0 + timedelta(minutes=minute),
            "rule.id": detector.id,
            "rule.name": "t",
            "rule.category": "credential_stuffing",
            "severity": "medium",
            "risk_score": risk,
            "entity": {"source.ip": ip},
            "event.ids": [f"e{minute}"],
            "threat.technique.id": None,
            "message": "m",
            "details": "{}",
        }
        return pl.DataFrame([row], schema=ALERT_SCHEMA)

    raised = [folder.fold(alert(0, "198.51.100.1", 50), state, None)]
    raised.append(folder.fold(alert(5, "198.51.100.1", 50), state, None))  # same risk: quiet
    raised.append(folder.fold(alert(10, "198.51.100.1", 90), state, None))  # riskier: raised
    assert [r.height for r in raised] == [1, 0, 1]
    update = raised[2].row(0, named=True)
    assert update["risk_score"] == 90 and json.loads(update["details"])["campaign"]["update"] == 1
