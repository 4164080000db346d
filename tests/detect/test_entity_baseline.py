"""Entity baselines (kind ``entity_baseline``): a staff account against its own normal."""

from __future__ import annotations

import doctest
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

import shopwatch.learn.baseline as baseline_module
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.state import KeyedState
from shopwatch.learn.baseline import MAX_BYTES, Profile, quantile

from .helpers import CASES, read_events, run

RULE = "data.staff_export_anomaly"
START = datetime(2026, 2, 2, tzinfo=UTC)  # a Monday
OFFICE = "91.64.12.33"
STAFF = ("anna@shop.example", "ben@shop.example", "carla@shop.example")


def detector() -> Any:
    return {d.id: d for d in load_detectors(sigma_rules=False).detectors}[RULE]


def export(
    at: datetime,
    user: str,
    records: int,
    *,
    ip: str = OFFICE,
    country: str = "DE",
    as_type: str = "residential",
    n: int = 0,
    action: str = "export",
) -> dict[str, Any]:
    return {
        "@timestamp": at,
        "event.id": f"e{n:06d}",
        "event.dataset": "shop.data_access",
        "event.action": action,
        "source.ip": ip,
        "source.geo.country_iso_code": country,
        "source.as.type": as_type,
        "user.name": user,
        "shop.data.object": "customers",
        "shop.data.records": records,
    }


def weeks(n_days: int = 26, seed: int = 1) -> list[dict[str, Any]]:
    """Office-hours exports of 100 to 2,500 records, one to three a weekday per account."""
    rng = random.Random(seed)
    rows = []
    for d in range(n_days):
        day = START + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        for user in STAFF:
            for _ in range(rng.randint(1, 3)):
                at = day + timedelta(hours=rng.uniform(8, 17.5))
                rows.append(export(at, user, rng.randint(100, 2500), n=len(rows)))
    return sorted(rows, key=lambda r: r["@timestamp"])


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None))


DAY = START + timedelta(days=28)  # the Monday after the four weeks


def alerts_for(extra: list[dict[str, Any]], **over: Any) -> pl.DataFrame:
    det = detector()
    if over:
        from shopwatch.detect.registry import build

        det = build({**det.spec.model_dump(exclude_none=True), **over})
    return run(det, [frame(weeks() + extra)])


def test_the_baseline_doctests_hold() -> None:
    failures, _ = doctest.testmod(baseline_module, verbose=False)
    assert failures == 0


@pytest.mark.parametrize(
    ("variant", "event"),
    [
        (
            "huge-at-night-from-hosting",
            export(
                DAY + timedelta(hours=2),
                STAFF[0],
                41_200,
                ip="45.134.212.9",
                country="NL",
                as_type="hosting",
                n=900_001,
            ),
        ),
        (
            "huge-alone-in-office-hours",
            export(DAY + timedelta(hours=11), STAFF[0], 90_000, n=900_002),
        ),
        (
            "four-times-from-a-new-network-at-night",
            export(
                DAY + timedelta(hours=3),
                STAFF[1],
                9_500,
                ip="185.220.101.4",
                country="DE",
                as_type="hosting",
                n=900_003,
            ),
        ),
    ],
)
def test_a_far_export_fires(variant: str, event: dict[str, Any]) -> None:
    alerts = alerts_for([event])
    assert alerts.height == 1, variant
    details = json.loads(alerts.item(0, "details"))
    assert details["baseline"] == "account"
    assert details["score"] >= details["threshold"]
    assert alerts.item(0, "entity")["user.name"] == event["user.name"]


@pytest.mark.parametrize(
    ("variant", "event"),
    [
        (
            "month-end-report-six-times",
            export(DAY + timedelta(hours=10), STAFF[0], 13_500, n=900_010),
        ),
        (
            "usual-size-at-night-from-a-hotel",
            export(
                DAY + timedelta(hours=2),
                STAFF[1],
                2_000,
                ip="45.134.212.9",
                country="NL",
                as_type="hosting",
                n=900_011,
            ),
        ),
        (
            "twice-the-usual-from-abroad",
            export(
                DAY + timedelta(hours=9),
                STAFF[2],
                4_800,
                ip="194.230.147.18",
                country="CH",
                n=900_012,
            ),
        ),
    ],
)
def test_normal_variation_is_quiet(variant: str, event: dict[str, Any]) -> None:
    assert alerts_for([event]).height == 0, variant


FOUR_TIMES = export(DAY + timedelta(hours=12), STAFF[1], 9_500, n=1)  # about 2 bits: quiet alone


@pytest.mark.parametrize(
    ("feature", "changes"),
    [
        ("hour", {"@timestamp": DAY + timedelta(hours=3)}),
        (
            "new_network+new_country",
            {"source.ip": "194.230.147.18", "source.geo.country_iso_code": "CH"},
        ),
        ("new_network+first_hosting", {"source.ip": "185.220.101.4", "source.as.type": "hosting"}),
    ],
)
def test_each_feature_can_tip_an_export_over(feature: str, changes: dict[str, Any]) -> None:
    """Four times the usual fires only with the feature; without it (the same export at
    noon, from the office) it is quiet; and a usual size stays quiet even with it."""
    assert alerts_for([FOUR_TIMES]).height == 0
    alerts = alerts_for([{**FOUR_TIMES, **changes}])
    assert alerts.height == 1, feature
    got = json.loads(alerts.item(0, "details"))["features"]
    for name in feature.split("+"):
        assert got[name] >= 1, (name, got)
    assert alerts_for([{**FOUR_TIMES, **changes, "shop.data.records": 2_400}]).height == 0


def test_the_day_total_catches_many_medium_exports() -> None:
    many = [
        export(DAY + timedelta(hours=13, minutes=20 * k), STAFF[2], 9_000, n=800_000 + k)
        for k in range(14)
    ]
    alerts = alerts_for(many)
    assert alerts.height == 1
    details = json.loads(alerts.item(0, "details"))
    assert details["features"]["day_total"] > details["features"]["size"]
    assert "today against a usual day" in alerts.item(0, "message")
    # each export alone is a few times the usual: no single one fires
    assert alerts_for(many[:1]).height == 0


def test_a_new_account_is_measured_against_its_colleagues() -> None:
    new = "dave@shop.example"
    first = [export(DAY - timedelta(hours=40), new, 700, n=700_001)]
    alerts = alerts_for([*first, export(DAY + timedelta(hours=14), new, 80_000, n=700_002)])
    assert alerts.height == 1
    assert json.loads(alerts.item(0, "details"))["baseline"] == "population"
    assert (
        alerts_for([*first, export(DAY + timedelta(hours=14), new, 2_000, n=700_003)]).height == 0
    )


def test_nothing_fires_during_warm_up() -> None:
    det = detector()
    short = [r for r in weeks() if r["@timestamp"] < START + timedelta(days=3)]
    huge = export(START + timedelta(days=3, hours=2), STAFF[0], 500_000, ip="45.134.212.9", n=1)
    assert run(det, [frame([*short, huge])]).height == 0


def test_alerted_exports_do_not_teach_and_taught_values_are_capped() -> None:
    det = detector()
    state = KeyedState(det.keys)
    run(det, [frame(weeks())], state)
    huge = [
        export(DAY + timedelta(hours=2, minutes=90 * k), STAFF[0], 60_000, ip="45.134.212.9", n=k)
        for k in range(6)
    ]
    alerts = run(det, [frame(huge)], state)
    assert alerts.height == 6  # the sixth as far out as the first: none of them was learned
    profiles = state.table("profiles", det._schema).filter(pl.col("user.name") == STAFF[1])
    before = Profile.from_row(profiles.row(0, named=True))
    high = quantile(before.values, 0.9)
    # ten times the usual in office hours from the office: 3.3 bits, quiet, taught at 4x only
    quiet = export(DAY + timedelta(hours=11), STAFF[1], int(high * 10), n=99)
    assert run(det, [frame([quiet])], state).height == 0
    row = (
        state.table("profiles", det._schema)
        .filter(pl.col("user.name") == STAFF[1])
        .row(0, named=True)
    )
    assert max(Profile.from_row(row).values[-1:]) <= 4 * high + 1


def test_batch_cuts_and_restarts_do_not_change_alerts() -> None:
    events = read_events(CASES / RULE / "fires.jsonl")
    det = detector()
    whole = run(det, [events])
    assert whole.height == 3
    state = KeyedState(det.keys)
    out = []
    for i in range(0, events.height, 37):
        out.append(det.detect(events.slice(i, 37), state))
        restored = KeyedState(det.keys)
        restored.restore(state.snapshot())
        state = restored
    cut = pl.concat([o for o in out if o.height])
    assert cut["alert.id"].to_list() == whole["alert.id"].to_list()
    assert cut["message"].to_list() == whole["message"].to_list()


def test_memory_per_entity_is_bounded() -> None:
    det = detector()
    state = KeyedState(det.keys)
    rows = weeks(120)
    run(det, [frame(rows)], state)
    table = state.table("profiles", det._schema)
    assert table.height == len(STAFF) + 1  # one per account and action, plus the population
    for row in table.iter_rows(named=True):
        prof = Profile.from_row(row)
        assert len(prof.values) <= det.spec.keep and len(prof.days) <= det.spec.keep_days
        assert prof.nbytes() <= MAX_BYTES
    assert table.estimated_size() / table.height < 1024


def test_exports_held_back_by_quiet_do_not_teach() -> None:
    det = detector()
    state = KeyedState(det.keys)
    run(det, [frame(weeks())], state)
    burst = [
        export(
            DAY + timedelta(hours=2, minutes=m),
            STAFF[0],
            60_000,
            ip="45.134.212.9",
            country="NL",
            as_type="hosting",
            n=m,
        )
        for m in range(0, 50, 5)
    ]
    assert run(det, [frame(burst)], state).height == 1  # one alert for the hour
    row = (
        state.table("profiles", det._schema)
        .filter((pl.col("user.name") == STAFF[0]) & (pl.col("event.action") == "export"))
        .row(0, named=True)
    )
    prof = Profile.from_row(row)
    assert max(prof.values) <= 2500 and "45.134.212.0/24" not in prof.nets and not prof.hosting
    # the next night the same export is as far out as the first
    again = export(
        DAY + timedelta(days=1, hours=2),
        STAFF[0],
        60_000,
        ip="45.134.212.9",
        country="NL",
        as_type="hosting",
        n=99,
    )
    assert run(det, [frame([again])], state).height == 1


def test_the_documented_poisoning_bound() -> None:
    """About ten alert-free exports, each four times the usual, one a day, make an export
    100 times the old usual pass (docs/baselines.md); three are not enough."""
    det = detector()

    def after(n: int) -> int:
        state = KeyedState(det.keys)
        run(det, [frame(weeks())], state)
        for k in range(n):
            row = (
                state.table("profiles", det._schema)
                .filter((pl.col("user.name") == STAFF[0]) & (pl.col("event.action") == "export"))
                .row(0, named=True)
            )
            high = quantile(Profile.from_row(row).values, 0.9)
            step = export(DAY + timedelta(days=k, hours=11), STAFF[0], int(high * 3.9), n=500 + k)
            assert run(det, [frame([step])], state).height == 0
        old_high = 2_500 * 0.9
        big = export(DAY + timedelta(days=n, hours=11), STAFF[0], int(old_high * 100), n=999)
        return run(det, [frame([big])], state).height

    assert after(3) == 1
    assert after(12) == 0


def test_an_ipv6_profile_stays_within_its_bound() -> None:
    prof = Profile(first=START, last=START)
    for k in range(100):
        prof.learn(START, k % 24, 1000.0, f"2a01:4ff8:{k:04x}::/48", f"C{k % 10}", False, keep=50)
        prof.add_to_day(k, 1000.0, 30)
    assert prof.nbytes() <= MAX_BYTES
