"""Threshold keys above the address (``source.ip|net``, ``global``) and ``share`` conditions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import build
from shopwatch.pipeline import Engine

from .helpers import run

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)
BY_NETWORK = {
    "id": "test.stuffing_by_network",
    "kind": "threshold",
    "category": "credential_stuffing",
    "where": {"event.dataset": "shop.auth", "event.action": "login"},
    "group_by": ["source.ip|net"],
    "count": {"distinct": "user.name", "at_least": 5, "within": "30m"},
    "share": {"where": {"event.outcome": "failure"}, "at_least": 0.8},
}


def logins(*rows: tuple[str, str, str]) -> pl.DataFrame:
    """(ip, account, outcome), 20 s apart."""
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=20 * i) for i in range(len(rows))],
                "event.id": [f"e{i}" for i in range(len(rows))],
                "event.dataset": ["shop.auth"] * len(rows),
                "event.action": ["login"] * len(rows),
                "source.ip": [ip for ip, _, _ in rows],
                "user.name": [user for _, user, _ in rows],
                "event.outcome": [outcome for *_, outcome in rows],
            }
        )
    )


def spread(network: str, n: int, outcome: str = "failure") -> list[tuple[str, str, str]]:
    """One try each from ``n`` addresses of a network, each on its own account."""
    if ":" in network:
        return [(f"{network}{i + 1:x}", f"victim{i}@example.org", outcome) for i in range(n)]
    return [(f"{network}.{i + 10}", f"victim{i}@example.org", outcome) for i in range(n)]


@pytest.mark.parametrize(
    ("network", "expected"),
    [("203.0.113", "203.0.113.0/24"), ("2a0b:f4c2:9:1::", "2a0b:f4c2:9::/48")],
)
def test_one_try_per_address_adds_up_per_network(network: str, expected: str) -> None:
    alerts = run(build(BY_NETWORK), [logins(*spread(network, 6))])
    assert alerts.height == 1
    details = json.loads(alerts["details"][0])
    assert details["keys"] == {"source.ip|net": expected}
    assert (details["distinct"], details["share"]) == (5, 1.0)


def test_the_same_tries_over_many_networks_stay_below_the_count() -> None:
    rows = [(f"198.51.{i}.7", f"victim{i}@example.org", "failure") for i in range(6)]
    assert run(build(BY_NETWORK), [logins(*rows)]).height == 0


def test_a_carrier_network_whose_customers_mostly_log_in_is_quiet() -> None:
    """Mobile CGNAT: many accounts from one network, a few mistyped passwords among them."""
    rows = spread("100.64.12", 12, "success")
    rows[3] = (rows[3][0], rows[3][1], "failure")
    rows[8] = (rows[8][0], rows[8][1], "failure")
    assert run(build(BY_NETWORK), [logins(*rows)]).height == 0
    without_share = {k: v for k, v in BY_NETWORK.items() if k != "share"}
    assert run(build(without_share), [logins(*rows)]).height == 1  # the share is what holds


def test_global_makes_the_whole_shop_one_group() -> None:
    rule = {**BY_NETWORK, "id": "test.stuffing_shop_wide", "group_by": ["global"]}
    rows = [(f"198.51.{i}.7", f"victim{i}@example.org", "failure") for i in range(6)]
    alerts = run(build(rule), [logins(*rows)])
    assert alerts.height == 1
    assert json.loads(alerts["details"][0])["keys"] == {"global": "shop"}


def test_the_engine_precomputes_the_network_key_with_the_same_result() -> None:
    events = logins(*spread("203.0.113", 6))
    alone = run(build(BY_NETWORK), [events])
    engine = Engine([build(BY_NETWORK)])
    through = engine.process(events)
    assert through.select("alert.id", "event.ids").equals(alone.select("alert.id", "event.ids"))
    assert "source.ip" in build(BY_NETWORK).needs
    assert "_source.ip|net" not in through.columns


def test_the_alert_lists_the_addresses_whose_logins_the_share_counts() -> None:
    rule = {**BY_NETWORK, "members": ["source.ip"]}
    rows = spread("203.0.113", 6)
    rows.insert(2, ("203.0.113.99", "someone@example.org", "success"))
    alerts = run(build(rule), [logins(*rows)])
    assert alerts.height == 1
    members = json.loads(alerts["details"][0])["members"]["source.ip"]
    assert "203.0.113.99" not in members  # it logged in: not part of the attack
    # It fired at the fifth account (four failures and the success: a share of 0.8).
    assert members == ["203.0.113.10", "203.0.113.11", "203.0.113.12", "203.0.113.13"]


def test_spread_wants_several_addresses_of_the_network() -> None:
    rule = {**BY_NETWORK, "spread": {"distinct": "source.ip", "at_least": 3}}
    one = [("203.0.113.10", f"victim{i}@example.org", "failure") for i in range(8)]
    assert run(build(BY_NETWORK), [logins(*one)]).height == 1  # without spread: one address
    assert run(build(rule), [logins(*one)]).height == 0
    two = [(f"203.0.113.{10 + i % 2}", f"victim{i}@example.org", "failure") for i in range(8)]
    assert run(build(rule), [logins(*two)]).height == 0
    three = [(f"203.0.113.{10 + i % 3}", f"victim{i}@example.org", "failure") for i in range(8)]
    alerts = run(build(rule), [logins(*three)])
    assert alerts.height == 1
    assert json.loads(alerts["details"][0])["spread"] == {"source.ip": 3}


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/static/css/site.css", "asset"),
        ("/media/catalog/42.JPG", "asset"),
        ("/wp-content/uploads/2026/03/banner", "asset"),
        ("/products/linen-shirt", "page"),
        ("/api/cart/items", "page"),
    ],
)
def test_asset_modifier_reads_a_path_as_asset_or_page(path: str, kind: str) -> None:
    from shopwatch.detect.conditions import derived_column

    got = pl.DataFrame({"url.path": [path]}).select(derived_column("url.path|asset")).item()
    assert got == kind
