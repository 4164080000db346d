"""Each campaign kind, in each variant, has the shape docs/simulator.md gives it.

A campaign is generated alone (no benign traffic) into a sink that keeps every line, run to
its natural end or to a cut-off of a few hours, and read back with the test readers.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shopwatch.sim import KINDS
from shopwatch.sim.campaigns import Campaign, generate
from shopwatch.sim.data import (
    BROWSER_UAS,
    DATACENTER_RANGES,
    RESIDENTIAL_RANGES,
    SCANNER_UAS,
)
from shopwatch.sim.emit import Out, Sink
from shopwatch.sim.ranges import RANGES
from shopwatch.sim.traffic import Traffic
from shopwatch.sim.world import Shop, build_shop
from tests.conftest import ROOT
from tests.sim.formats import NGINX, SYSLOG, flatten

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC).timestamp()
SEEDS = (1, 2, 3)
ATTACKS = [(k, v) for k, kind in KINDS.items() if not kind.benign for v in kind.variants]
#: Cut-offs (hours) for kinds whose natural length would make a test slow.
CUT_H = {
    "ssh_brute_force": 3.0,
    "http_flood": 1.0,
    "vendor_data_leak": 6.0,
    "corporate_nat": 2.0,
    "inventory_hoarding": 12.0,
    "flash_sale": 0.5,
    "mobile_cgnat": 3.0,
}
BROWSERS = {u for u, _, _ in BROWSER_UAS}
HOSTING = [ipaddress.IPv4Network(c) for _, _, c in DATACENTER_RANGES]
HOME = [ipaddress.IPv4Network(c) for _, _, _, c in RESIDENTIAL_RANGES]


@cache
def _shop(seed: int) -> tuple[Shop, Traffic]:
    shop = build_shop(seed, 1500)
    return shop, Traffic(shop)


@cache
def _run(kind: str, variant: str, seed: int) -> dict[str, Any]:
    shop, traffic = _shop(seed)
    sink = Sink(seed, START)
    c = Campaign(
        f"t-{kind}",
        kind,
        START + 3600.0,
        START + 3600.0 + CUT_H.get(kind, 60.0) * 3600,
        variant=variant,
    )
    generate(Out(sink, "t"), np.random.default_rng([seed, 2, 7]), c, shop, traffic)
    web, ecs, ssh = [], [], []
    for ts, fmt, line in sink.drain():
        if fmt == "nginx":
            m = NGINX.match(line)
            assert m, line
            row = m.groupdict()
            row["ts"], row["status"], row["path"] = (
                ts,
                int(row["status"]),
                row["target"].split("?")[0],
            )
            web.append(row)
        elif fmt == "ecs":
            row = flatten(json.loads(line))
            row["ts"] = ts
            ecs.append(row)
        elif fmt == "syslog":
            m = SYSLOG.match(line)
            assert m, line
            ssh.append({"ts": ts, **m.groupdict()})
    return {
        "truth": c.to_dict(),
        "web": web,
        "ecs": ecs,
        "ssh": ssh,
        "shop": shop,
        "traffic": traffic,
    }


def _in(ip: str, nets: list[ipaddress.IPv4Network]) -> bool:
    addr = ipaddress.IPv4Address(ip)
    return any(addr in n for n in nets)


def _logins(r: dict[str, Any], outcome: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in r["ecs"]
        if e["event.dataset"] == "shop.auth"
        and e["event.action"] == "login"
        and (outcome is None or e["event.outcome"] == outcome)
    ]


def _median_gap(times: list[float]) -> float:
    times = sorted(times)
    return statistics.median(b - a for a, b in itertools.pairwise(times))


# ------------------------------------------------------------------ ground truth


@pytest.mark.parametrize(("kind", "variant"), ATTACKS)
def test_ground_truth_names_the_attackers(kind: str, variant: str) -> None:
    r = _run(kind, variant, 1)
    t = r["truth"]
    assert t["variant"] == variant and t["kind"] == kind and not t["benign"]
    assert t["entities"], "an attack names what an alert may point at"
    assert set(t["entities"]) <= {
        "source.ip",
        "user.name",
        "shop.device.id",
        "shop.session.id",
        "shop.payment.card.fingerprint",
        "shop.promo.code",
        "shop.vendor.name",
        "shop.metric.name",
        "host.name",
    }
    ips = {e["ip"] for e in r["web"]} | {
        e.get("source.ip") for e in r["ecs"] if e["event.dataset"] not in ("vendor.api",)
    }
    ips.discard(None)
    if kind not in ("vendor_data_leak", "ssh_brute_force"):
        assert ips <= set(t["entities"].get("source.ip", [])), "every address the campaign used is named"
    assert t["start"] <= t["end"]


@pytest.mark.parametrize(("kind", "variant"), ATTACKS)
def test_parameters_differ_between_seeds(kind: str, variant: str) -> None:
    """No drawn parameter with ten or more possible values is the same for three seeds."""
    params = [_run(kind, variant, s)["truth"]["params"] for s in SEEDS]
    assert params[0] != params[1] or params[1] != params[2]
    for name, rng_ in RANGES[(kind, variant)].items():
        if rng_.dist.startswith("int") and rng_.hi - rng_.lo < 9:
            continue
        values = [p[name] for p in params]
        assert len(set(values)) > 1, (name, values)


def test_every_range_is_in_the_docs() -> None:
    text = (ROOT / "docs" / "simulator.md").read_text(encoding="utf-8")
    rows = {
        tuple(cell.strip() for cell in line.strip("|").split("|")[:3])
        for line in text.splitlines()
        if line.startswith("| ")
    }
    for (kind, variant), params in RANGES.items():
        for name in params:
            assert (kind, variant, name) in rows, (kind, variant, name)
    assert set(KINDS) == {k for k, _ in RANGES}


# ------------------------------------------------------------------ auth


@pytest.mark.parametrize("seed", SEEDS)
def test_low_slow_stuffing_is_many_residential_addresses_with_few_tries(seed: int) -> None:
    r = _run("credential_stuffing", "low_slow", seed)
    per_ip = Counter(e["source.ip"] for e in _logins(r))
    assert len(per_ip) >= 100
    assert set(per_ip.values()) <= {1, 2, 3}
    assert all(_in(ip, HOME) for ip in per_ip)
    countries = {
        r["shop"].countries.index(cc)
        for cc, pool in r["shop"].residential.items()
        if any(_in(ip, [ipaddress.IPv4Network(n) for n in pool.cidrs]) for ip in list(per_ip)[:300])
    }
    assert len(countries) >= 8
    span = max(e["ts"] for e in _logins(r)) - min(e["ts"] for e in _logins(r))
    assert span >= 1.5 * 3600
    tried = {e["user.name"] for e in _logins(r) if e["user.name"] in r["shop"].by_email}
    assert tried <= set(r["truth"]["entities"]["user.name"])


@pytest.mark.parametrize("seed", SEEDS)
def test_loud_stuffing_is_a_combo_list_through_hosting_proxies(seed: int) -> None:
    r = _run("credential_stuffing", "loud", seed)
    fails = _logins(r, "failure")
    assert all(_in(e["source.ip"], HOSTING) for e in fails)
    reasons = Counter(e["event.reason"] for e in fails)
    assert reasons["unknown_user"] > reasons["bad_password"]
    ok = len(_logins(r, "success"))
    assert ok / len(_logins(r)) <= 0.03


@pytest.mark.parametrize("seed", SEEDS)
def test_low_slow_brute_force_is_one_try_every_ten_to_sixty_seconds(seed: int) -> None:
    r = _run("brute_force", "low_slow", seed)
    logins = _logins(r)
    assert len({e["user.name"] for e in logins}) <= 3
    assert len({e["source.ip"] for e in logins}) <= 4
    if len(logins) >= 5:
        assert 10 <= _median_gap([e["ts"] for e in logins]) <= 60
    assert all(e["user_agent.original"] in BROWSERS for e in logins)


@pytest.mark.parametrize("seed", SEEDS)
def test_loud_brute_force_is_one_address_at_tool_speed(seed: int) -> None:
    r = _run("brute_force", "loud", seed)
    logins = _logins(r)
    assert len({e["source.ip"] for e in logins}) == 1
    assert len({e["user.name"] for e in logins}) <= 3
    if len(logins) >= 20:
        assert _median_gap([e["ts"] for e in logins]) < 2.0


def _ssh_attempts(r: dict[str, Any]) -> dict[str, list[float]]:
    per_ip: dict[str, list[float]] = defaultdict(list)
    for row in r["ssh"]:
        if "Failed password" in row["msg"]:
            per_ip[row["msg"].split(" from ")[1].split(" ")[0]].append(row["ts"])
    return per_ip


@pytest.mark.parametrize("seed", SEEDS)
def test_ssh_low_slow_is_a_botnet_trying_every_few_minutes(seed: int) -> None:
    per_ip = _ssh_attempts(_run("ssh_brute_force", "low_slow", seed))
    assert len(per_ip) >= 5
    gaps = [_median_gap(t) for t in per_ip.values() if len(t) >= 4]
    assert gaps and all(60 <= g <= 600 for g in gaps)


def test_ssh_loud_is_one_address() -> None:
    per_ip = _ssh_attempts(_run("ssh_brute_force", "loud", 1))
    assert len(per_ip) == 1
    (times,) = per_ip.values()
    assert len(times) / (max(times) - min(times) + 1) >= 0.3


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_account_takeover_changes_the_account_then_ships_elsewhere(variant: str) -> None:
    r = _run("account_takeover", variant, 2)
    shop = r["shop"]
    victims = r["truth"]["entities"]["user.name"]
    assert victims
    for email in victims:
        cust = shop.by_email[email]
        mine = [e for e in r["ecs"] if e.get("user.name") == email]
        actions = [e["event.action"] for e in mine]
        assert "login" in actions
        for step in (
            "email_change",
            "password_change",
            "mfa_disable",
            "address_add",
            "payment_method_add",
        ):
            if step in actions:
                assert actions.index("login") < actions.index(step)
        orders = [e for e in mine if e["event.action"] == "order_placed"]
        for o in orders:
            assert o["shop.shipping.address_hash"] != cust.address_hash
        ok = next(
            e for e in mine if e["event.action"] == "login" and e["event.outcome"] == "success"
        )
        assert ok["shop.device.id"] not in {d.id for d in cust.devices}
        if variant == "low_slow":
            own = [ipaddress.IPv4Network(c) for c in shop.residential[cust.country].cidrs]
            assert _in(ok["source.ip"], own), "a residential proxy in the victim's own country"
        else:
            assert _in(ok["source.ip"], HOSTING)
    changes = sorted(e["ts"] for e in r["ecs"] if e["event.dataset"] == "shop.account")
    if len(changes) >= 3:
        gap = _median_gap(changes)
        assert gap >= 300 if variant == "low_slow" else gap <= 600


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_fake_accounts_look_like_the_signup_bot_log(variant: str) -> None:
    r = _run("fake_account_creation", variant, 1)
    per_ip = Counter(e["ip"] for e in r["web"])
    signups = [e for e in r["ecs"] if e["event.action"] == "signup"]
    assert signups
    assert {"/signup"} <= {e["path"] for e in r["web"]}
    if variant == "low_slow":
        assert len(per_ip) >= 100 and max(per_ip.values()) <= 10
    else:
        assert len(per_ip) <= 5 and len(signups) >= 100


# ------------------------------------------------------------------ web


@pytest.mark.parametrize("seed", SEEDS)
def test_scanner_variants(seed: int) -> None:
    loud = _run("vuln_scanner", "loud", seed)["web"]
    assert len({e["ip"] for e in loud}) == 1
    assert sum(e["status"] >= 400 for e in loud) / len(loud) > 0.8
    tools = {u.split("{")[0][:20] for u in SCANNER_UAS.values()}
    assert all(any(e["ua"].startswith(t) for t in tools) for e in loud)
    slow = _run("vuln_scanner", "low_slow", seed)["web"]
    assert all(e["ua"] in BROWSERS for e in slow)
    assert 5 <= _median_gap([e["ts"] for e in slow]) <= 60


@pytest.mark.parametrize("kind", ["sqli_probe", "xss_probe"])
def test_injection_variants(kind: str) -> None:
    loud = _run(kind, "loud", 1)
    assert len(loud["web"]) >= 200
    slow = _run(kind, "low_slow", 1)
    assert 3 <= len(slow["web"]) <= 20
    assert all(e["ua"] in BROWSERS for e in slow["web"])
    if len(slow["web"]) >= 2:
        assert slow["web"][-1]["ts"] - slow["web"][0]["ts"] >= 600


@pytest.mark.parametrize("seed", SEEDS)
def test_low_slow_scraping_is_one_block_of_headless_browsers(seed: int) -> None:
    r = _run("scraping", "low_slow", seed)
    block = ipaddress.IPv4Network(r["truth"]["params"]["block"])
    assert block.prefixlen == 24 or any(block == n for n in HOSTING)
    per_ip: dict[str, list[float]] = defaultdict(list)
    for e in r["web"]:
        assert ipaddress.IPv4Address(e["ip"]) in block
        assert e["ua"] in BROWSERS and "Headless" not in e["ua"]
        if e["path"].startswith(("/products/", "/category/")):
            per_ip[e["ip"]].append(e["ts"])
    assert 10 <= len(per_ip) <= 250
    gaps = [b - a for t in per_ip.values() for a, b in itertools.pairwise(t)]
    assert gaps and all(5 <= g <= 15 for g in gaps)
    assert 5 <= statistics.median(gaps) <= 15
    assets = [e for e in r["web"] if e["path"].startswith(("/assets/", "/media/"))]
    assert {e["path"].rsplit(".", 1)[-1] for e in assets} >= {"css", "js", "webp"}


def test_loud_scraping_is_a_library_without_assets() -> None:
    r = _run("scraping", "loud", 2)
    assert len({e["ip"] for e in r["web"]}) <= 4
    assert not any(e["path"].startswith(("/assets", "/media")) for e in r["web"])
    assert all(e["ua"] not in BROWSERS for e in r["web"])


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_http_flood_hits_a_costly_endpoint(variant: str) -> None:
    r = _run("http_flood", variant, 1)
    web = r["web"]
    assert {e["path"] for e in web} <= {"/search", "/api/products"}
    ips = Counter(e["ip"] for e in web)
    span = max(e["ts"] for e in web) - min(e["ts"] for e in web)
    if variant == "loud":
        assert len(ips) >= 50 and len(web) / span >= 25
    else:
        assert 10 <= len(ips) <= 60 and max(ips.values()) / span <= 0.6


# ------------------------------------------------------------------ fraud


@pytest.mark.parametrize("seed", SEEDS)
def test_low_slow_card_testing_is_many_sessions_of_few_cards(seed: int) -> None:
    r = _run("card_testing", "low_slow", seed)
    pays = [e for e in r["ecs"] if e["event.dataset"] == "shop.payment"]
    per_session: dict[str, set[str]] = defaultdict(set)
    for e in pays:
        per_session[e["shop.session.id"]].add(e["shop.payment.card.fingerprint"])
    assert len(per_session) >= 5
    assert all(1 <= len(v) <= 3 for v in per_session.values())
    devices = {e["shop.device.id"] for e in pays}
    assert len(devices) == len(per_session)
    assert all(_in(e["source.ip"], HOME) for e in pays)


def test_loud_card_testing_is_few_sessions_many_cards() -> None:
    r = _run("card_testing", "loud", 1)
    pays = [e for e in r["ecs"] if e["event.dataset"] == "shop.payment"]
    assert len({e["shop.session.id"] for e in pays}) <= 3
    assert len({e["shop.payment.card.fingerprint"] for e in pays}) >= 50
    assert sum(e["event.outcome"] == "failure" for e in pays) / len(pays) > 0.7


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_promo_abuse_redeems_one_code_many_times(variant: str) -> None:
    r = _run("promo_abuse", variant, 3)
    orders = [e for e in r["ecs"] if e["event.action"] == "order_placed"]
    assert orders
    assert {e["shop.promo.code"] for e in orders} == set(r["truth"]["entities"]["shop.promo.code"])
    assert len({e["user.name"] for e in orders}) == len(orders), "one redemption per new account"
    assert len({e["shop.shipping.address_hash"] for e in orders}) <= 5
    if variant == "loud" and len(orders) > 5:
        assert len({e["shop.device.id"] for e in orders}) <= 5
    if variant == "low_slow":
        assert len({e["source.ip"] for e in orders}) == len(orders)


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_inventory_hoarding_holds_a_limited_product_and_never_buys(variant: str) -> None:
    r = _run("inventory_hoarding", variant, 1)
    adds = [e for e in r["ecs"] if e["event.action"] == "add_to_cart"]
    assert adds
    assert len({e["shop.product.id"] for e in adds}) == 1
    assert all(5 <= e["shop.cart.quantity"] <= 10 for e in adds)
    assert not any(e["event.dataset"] == "shop.order" for e in r["ecs"])
    per_session: dict[str, list[float]] = defaultdict(list)
    for e in adds:
        per_session[e["shop.session.id"]].append(e["ts"])
    readds = [b - a for t in per_session.values() for a, b in itertools.pairwise(t)]
    assert readds and min(readds) >= 600


# ------------------------------------------------------------------ data


def test_staff_exfiltration_variants() -> None:
    loud = _run("staff_exfiltration", "loud", 1)
    office = loud["traffic"].staff_ip
    exports = [e for e in loud["ecs"] if e["event.action"] == "export"]
    assert len(exports) == 1 and 10_000 <= exports[0]["shop.data.records"] <= 500_000
    assert exports[0]["source.ip"] != office
    assert loud["truth"]["params"]["odd_hour"]
    slow = _run("staff_exfiltration", "low_slow", 1)
    exports = [e for e in slow["ecs"] if e["event.action"] == "export"]
    assert 3 <= len(exports) <= 20
    assert all(e["source.ip"] == slow["traffic"].staff_ip for e in exports)
    assert all(500 <= e["shop.data.records"] <= 50_000 for e in exports)


@pytest.mark.parametrize("variant", ["loud", "low_slow"])
def test_vendor_leak_sends_emails_to_an_unapproved_vendor(variant: str) -> None:
    r = _run("vendor_data_leak", variant, 1)
    calls = [
        e
        for e in r["ecs"]
        if e["event.dataset"] == "vendor.api"
        and e["shop.vendor.name"] in r["truth"]["entities"]["shop.vendor.name"]
    ]
    assert calls
    assert {e["shop.vendor.name"] for e in calls}.isdisjoint(
        {"stripe", "dhl", "sendgrid", "google-analytics", "algolia"}
    )
    assert all("%40" in e["url.query"] and e["url.query"] in e["url.full"] for e in calls)
    big = statistics.median(e["http.request.bytes"] for e in calls)
    assert big >= 1500 if variant == "loud" else big <= 6000


# ------------------------------------------------------------------ benign


def test_benign_look_alikes_come_from_their_ranges() -> None:
    nat = _run("corporate_nat", "loud", 1)["truth"]
    assert 1 <= nat["params"]["employees"] <= 500
    forgetful = _run("forgetful_customer", "loud", 1)
    fails = _logins(forgetful, "failure")
    assert 1 <= len(fails) <= 6
    export = _run("office_bulk_export", "loud", 2)
    sizes = [e["shop.data.records"] for e in export["ecs"]]
    assert max(sizes) >= 2 * export["truth"]["params"]["usual_records"]
    assert all(e["source.ip"] == export["traffic"].staff_ip for e in export["ecs"])
    cgnat = _run("mobile_cgnat", "loud", 3)
    assert len(cgnat["truth"]["entities"]["source.ip"]) == 1
    assert len({e["user.name"] for e in cgnat["ecs"] if e.get("user.name")}) >= 5
    moving = _run("moving_house", "loud", 1)
    assert any(e["event.action"] == "address_change" for e in moving["ecs"])
    retry = _run("declined_card_retry", "loud", 1)
    assert any(e.get("shop.payment.decline_code") for e in retry["ecs"])
    crawler = _run("search_crawler", "loud", 1)
    web = crawler["web"]
    assert len(web) / (web[-1]["ts"] - web[0]["ts"]) <= 1.5


def test_same_seed_same_campaign(tmp_path: Path) -> None:
    a = _run("credential_stuffing", "low_slow", 1)["truth"]
    _run.cache_clear()
    b = _run("credential_stuffing", "low_slow", 1)["truth"]
    assert a == b
