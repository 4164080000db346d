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


WON = {
    "within": "1h",
    "hold": "1m",
    "compromised": {
        "where": {
            "event.action": "login",
            "event.outcome": "success",
            "shop.profile.new_device": True,
        },
        "by": "source.ip",
        "name": "user.name",
    },
}


def login(at: timedelta, ip: str, user: str, *, new_device: bool) -> dict[str, Any]:
    return {
        "@timestamp": T0 + at,
        "event.id": f"ok-{user}",
        "event.action": "login",
        "event.outcome": "success",
        "source.ip": ip,
        "user.name": user,
        "shop.profile.new_device": new_device,
    }


def with_logins(frame: pl.DataFrame, rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.concat([frame, conform(pl.DataFrame(rows))], how="diagonal_relaxed")).sort(
        "@timestamp"
    )


def compromised(alerts: pl.DataFrame) -> list[set[str]]:
    return [
        set(json.loads(d).get("compromised", {}).get("user.name", [])) for d in alerts["details"]
    ]


@pytest.mark.parametrize("step", [1, 1000], ids=["event-per-batch", "one-batch"])
def test_a_campaign_names_the_accounts_it_broke_into(step: int) -> None:
    frame = with_logins(
        attempts(10),
        [
            # from an exit of the campaign, on a device the account never used: broken into
            login(timedelta(seconds=11), "198.51.100.2", "anna@example.com", new_device=True),
            # after the exit's first failure, before the campaign's first alert: named too
            login(timedelta(seconds=1), "198.51.100.1", "bert@example.com", new_device=True),
            # the owner on a phone the account knows, behind the same exit: not named
            login(timedelta(seconds=7), "198.51.100.3", "carl@example.com", new_device=False),
            # a new device, but from an address that sent none of the campaign's failures
            login(timedelta(seconds=9), "203.0.113.9", "dora@example.com", new_device=True),
        ],
    )
    alerts = run(Engine([rule(WON)]), frame, step)
    won = compromised(alerts)
    assert set().union(*won) == {"anna@example.com", "bert@example.com"}
    last = alerts.row(-1, named=True)
    assert "ok-anna@example.com" in last["event.ids"]  # the break-in is part of the evidence
    assert "compromised" in last["message"]


def test_a_break_in_after_the_campaign_ended_is_not_its() -> None:
    frame = with_logins(
        attempts(3),
        [login(timedelta(hours=3), "198.51.100.1", "anna@example.com", new_device=True)],
    )
    alerts = run(Engine([rule(WON)]), frame, 1)
    assert set().union(*compromised(alerts)) == set()


def test_a_break_in_brings_an_update_of_its_own() -> None:
    engine = Engine([rule(WON)])
    engine.process(attempts(3))
    later = engine.process(
        conform(
            pl.DataFrame(
                [login(timedelta(minutes=5), "198.51.100.2", "anna@example.com", new_device=True)]
            )
        )
    )
    # the engine's clock trusts one lone event little: the update waits for the replay's end
    later = pl.concat([later, engine.flush()])
    assert later.height == 1 and compromised(later) == [{"anna@example.com"}]
    assert json.loads(later["details"][0])["campaign"]["update"] == 1


def test_compromised_needs_a_rule_with_a_where_clause() -> None:
    from shopwatch.detect.campaign import CampaignFolder
    from shopwatch.errors import ContentError

    seq = build(
        {
            "id": "test.seq",
            "kind": "sequence",
            "category": "account_takeover",
            "group_by": ["user.name"],
            "within": "1h",
            "steps": [
                {"name": "a", "where": {"event.action": "login"}},
                {"name": "b", "where": {"event.action": "email_change"}},
            ],
            "campaign": WON,
        }
    )
    with pytest.raises(ContentError, match="where clause"):
        CampaignFolder(seq)


def test_a_break_in_early_in_a_long_batch_is_named() -> None:
    """One replay batch holding hours of a campaign: the break-in of its first minutes is
    still named, not forgotten because the batch ends hours later."""
    rows = []
    for a in range(18):  # a new exit every ten minutes for three hours, three tries each
        for k in range(3):
            rows.append(
                {
                    "@timestamp": T0 + timedelta(minutes=10 * a, seconds=2 * k),
                    "event.id": f"f{a}-{k}",
                    "event.action": "login",
                    "event.outcome": "failure",
                    "source.ip": f"198.51.100.{a + 1}",
                }
            )
    frame = with_logins(
        conform(pl.DataFrame(rows)),
        [login(timedelta(seconds=30), "198.51.100.1", "anna@example.com", new_device=True)],
    )
    alerts = run(Engine([rule(WON)]), frame, 100_000)
    assert "anna@example.com" in set().union(*compromised(alerts))


def failures_from(ip: str, start: timedelta, n: int = 3, tag: str = "x") -> list[dict[str, Any]]:
    return [
        {
            "@timestamp": T0 + start + timedelta(seconds=2 * k),
            "event.id": f"{tag}-{ip}-{k}",
            "event.action": "login",
            "event.outcome": "failure",
            "source.ip": ip,
        }
        for k in range(n)
    ]


def test_a_success_before_the_address_failed_is_not_a_break_in() -> None:
    """A customer on a new phone behind a shared address, half an hour before a bot there."""
    rows = failures_from("198.51.100.1", timedelta(0)) + failures_from(
        "198.51.100.2", timedelta(minutes=40)
    )
    frame = with_logins(
        conform(pl.DataFrame(rows)),
        [login(timedelta(minutes=5), "198.51.100.2", "anna@example.com", new_device=True)],
    )
    for step in (1, 100_000):
        alerts = run(Engine([rule(WON)]), frame, step)
        assert set().union(*compromised(alerts)) == set(), step


def test_a_campaign_that_ends_in_the_batch_still_names_its_break_in() -> None:
    rows = (
        failures_from("198.51.100.1", timedelta(0))
        + failures_from("198.51.100.2", timedelta(minutes=3))
        + failures_from("198.51.100.3", timedelta(hours=2), tag="later")  # a new campaign
    )
    frame = with_logins(
        conform(pl.DataFrame(rows)),
        [login(timedelta(minutes=20), "198.51.100.2", "anna@example.com", new_device=True)],
    )
    for step in (1, 100_000):
        alerts = run(Engine([rule(WON)]), frame, step)
        assert "anna@example.com" in set().union(*compromised(alerts)), step


def test_a_state_saved_before_first_failures_were_kept_still_works() -> None:
    engine = Engine([rule(WON)])
    engine.process(attempts(3))
    state = engine.states["test.per_address"]
    state.put("campaign_seen", state.table("campaign_seen", {}).drop("_first"))
    later = engine.process(attempts(3, start=timedelta(minutes=10)))
    assert engine.stats.detector_errors.get("test.per_address", 0) == 0
    assert later.height >= 0
