"""The ``travel`` kind: consecutive logins of an account too far apart for the time between."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.registry import build
from shopwatch.detect.state import KeyedState
from shopwatch.detect.travel import country_distance_km
from shopwatch.errors import ContentError

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def rule(**over: Any) -> Any:
    return build(
        {
            "id": "test.travel",
            "kind": "travel",
            "category": "account_takeover",
            "where": {"event.action": "login"},
            **over,
        }
    )


def logins(*rows: tuple[str, str, float], quiet: tuple[bool, ...] = ()) -> pl.DataFrame:
    """(user, country, minutes after T0)."""
    frame = {
        "@timestamp": [T0 + timedelta(minutes=m) for _, _, m in rows],
        "event.id": [f"e{i}" for i in range(len(rows))],
        "event.action": ["login"] * len(rows),
        "user.name": [u for u, _, _ in rows],
        "source.geo.country_iso_code": [c for _, c, _ in rows],
        "source.ip": [f"198.51.100.{i + 1}" for i in range(len(rows))],
    }
    if quiet:
        frame["shop.profile.new_country"] = [not q for q in quiet]
    return conform(pl.DataFrame(frame))


def run(detector: Any, frame: pl.DataFrame, *, one_by_one: bool = False) -> pl.DataFrame:
    state = KeyedState(detector.keys)
    parts = [frame.slice(i, 1) for i in range(frame.height)] if one_by_one else [frame]
    found = [f for f in (detector.detect(p, state) for p in parts) if f.height]
    return pl.concat(found) if found else pl.DataFrame()


@pytest.mark.parametrize("one_by_one", [False, True], ids=["one-batch", "event-per-batch"])
def test_an_impossible_hop_fires_whatever_the_batches(one_by_one: bool) -> None:
    alerts = run(rule(), logins(("a", "DE", 0), ("a", "NG", 40)), one_by_one=one_by_one)
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["event.ids"] == ["e0", "e1"] and row["entity"]["source.ip"] == "198.51.100.2"
    details = json.loads(row["details"])
    assert details["from"]["country"] == "DE" and details["speed_kmh"] > 1000


@pytest.mark.parametrize(
    ("second", "minutes"),
    [("FR", 30), ("US", 14 * 60), ("DE", 1)],
    ids=["over-the-border", "a-real-flight", "same-country"],
)
def test_plausible_moves_are_quiet(second: str, minutes: float) -> None:
    assert run(rule(), logins(("a", "DE", 0), ("a", second, minutes))).height == 0


def test_a_close_pair_below_min_distance_is_quiet_however_fast() -> None:
    frame = logins(("a", "DE", 0), ("a", "GB", 1))  # about 300 km between nearest towns
    assert 200 < (country_distance_km("DE", "GB") or 0) < 500
    assert run(rule(), frame).height == 0
    assert run(rule(min_distance_km=200), frame).height == 1


def test_an_old_previous_login_is_no_evidence() -> None:
    frame = logins(("a", "DE", 0), ("a", "AU", 25 * 60))
    assert run(rule(within="24h"), frame).height == 0
    assert run(rule(within="48h", max_speed_kmh=100), frame).height == 1


def test_quiet_when_moves_the_last_login_without_alerting() -> None:
    frame = logins(("a", "DE", 0), ("a", "NL", 5), ("a", "NG", 10), quiet=(False, True, False))
    alerts = run(rule(quiet_when={"shop.profile.new_country": False}), frame)
    assert alerts.height == 1 and json.loads(alerts["details"][0])["from"]["country"] == "NL"


def test_accounts_do_not_mix() -> None:
    assert run(rule(), logins(("a", "DE", 0), ("b", "NG", 10))).height == 0


def test_unknown_countries_are_skipped() -> None:
    assert country_distance_km("DE", "ZZ") is None
    assert run(rule(), logins(("a", "DE", 0), ("a", "ZZ", 1))).height == 0


def test_the_key_must_be_an_entity() -> None:
    with pytest.raises(ContentError, match="entity field"):
        rule(group_by=["url.path"])


def test_a_late_login_is_judged_where_it_belongs_in_time() -> None:
    """US, then (late) an earlier DE login, then US again: as if they had come in order."""
    frame = logins(("a", "US", 50), ("a", "DE", 0), ("a", "US", 70))
    in_order = run(rule(), frame.sort("@timestamp"))
    late = run(rule(), frame, one_by_one=True)
    assert in_order.height == late.height == 1
    assert late["event.ids"].to_list() == in_order["event.ids"].to_list() == [["e1", "e0"]]
