"""The file writer: valid formats, determinism, and ground truth that matches the data."""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import CATEGORIES, EVENT_SCHEMA
from shopwatch.sim import KINDS, Simulator, simulate
from shopwatch.sim.data import CRAWLER_RANGES
from tests.sim.formats import VPC, ecs_rows, nginx_rows, syslog_rows

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)
MINUTES = 20
CUSTOMERS = 2000
DATASETS = {
    "shop.auth",
    "shop.account",
    "shop.cart",
    "shop.order",
    "shop.payment",
    "shop.data_access",
    "vendor.api",
    "apm.metric",
    "http.access",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("sim") / "a"
    result = simulate(
        out, MINUTES, seed=11, start=START, customers=CUSTOMERS, history_days=0, warmup_hours=0
    )
    truth = json.loads((out / "ground_truth.json").read_text())
    return {
        "dir": out,
        "result": result,
        "campaigns": truth,
        # Look-alikes have one form and no variant in the ground truth.
        "truth": {(c["kind"], c["variant"] or "loud"): c for c in truth},
        "nginx": nginx_rows(out / "access.log"),
        "ecs": ecs_rows(out / "events.ndjson"),
        "syslog": syslog_rows(out / "auth.log", 2025),
    }


def _window(
    run: dict[str, Any], kind: str, variant: str = "loud"
) -> tuple[float, float, dict[str, Any]]:
    c = run["truth"][(kind, variant)]
    start = datetime.fromisoformat(c["start"].replace("Z", "+00:00")).timestamp()
    end = datetime.fromisoformat(c["end"].replace("Z", "+00:00")).timestamp()
    return start, end, c


# ------------------------------------------------------------------ formats


def test_the_vendor_inventory_lists_every_vendor_the_run_calls(run: dict[str, Any]) -> None:
    import yaml

    inventory = yaml.safe_load((run["dir"] / "vendors.yaml").read_text())["vendors"]
    called = set()
    with (run["dir"] / "events.ndjson").open() as lines:
        for line in lines:
            if '"vendor.api"' in line:
                called.add(json.loads(line)["shop"]["vendor"]["name"])
    # the shop's own vendors are all listed; a leak campaign's vendor never is
    unlisted = called - set(inventory)
    assert {"stripe", "sendgrid", "google-analytics"} <= set(inventory)
    assert unlisted <= {"pixelpulse", "chatnest", "adsync", "reviewloop"}


def test_every_file_is_written_with_lines(run: dict[str, Any]) -> None:
    names = sorted(p.name for p in run["dir"].iterdir())
    assert names == [
        "access.log",
        "auth.log",
        "events.ndjson",
        "ground_truth.json",
        "run.json",
        "vendors.yaml",
        "vpcflow.log",
    ]
    assert len(run["nginx"]) > 2000
    assert len(run["ecs"]) > 500
    assert len(run["syslog"]) > 50
    assert run["result"].lines["nginx"] == len(run["nginx"])


def test_lines_are_sorted_by_time_and_inside_the_run(run: dict[str, Any]) -> None:
    t0, t1 = START.timestamp(), START.timestamp() + MINUTES * 60
    for fmt in ("nginx", "ecs", "syslog"):
        ts = [r["ts"] for r in run[fmt]]
        assert ts == sorted(ts), fmt
        assert t0 <= ts[0] and ts[-1] < t1, fmt


def test_vpcflow_lines_are_version_2_records(run: dict[str, Any]) -> None:
    lines = (run["dir"] / "vpcflow.log").read_text().splitlines()
    assert lines[0].startswith("version account-id interface-id srcaddr dstaddr")
    starts = []
    actions = Counter()
    for no, line in enumerate(lines[1:], 2):
        m = VPC.match(line)
        assert m, f"vpcflow.log:{no}: {line!r}"
        for ip in (m.group(1), m.group(2)):
            ipaddress.IPv4Address(ip)
        start, end = int(m.group(8)), int(m.group(9))
        assert end - start == 60
        starts.append(start)
        actions[m.group(10)] += 1
    assert starts == sorted(starts)
    assert actions["ACCEPT"] > 100 and actions["REJECT"] > 100


def test_ecs_events_follow_the_contract(run: dict[str, Any]) -> None:
    ids = set()
    seen = Counter()
    for row in run["ecs"]:
        assert row["event.dataset"] in DATASETS
        seen[row["event.dataset"]] += 1
        ids.add(row["event.id"])
        for key, value in row.items():
            if key in ("ts", "@timestamp"):
                continue
            assert key in EVENT_SCHEMA, f"{key} is not a contract field"
            dtype = EVENT_SCHEMA[key]
            if dtype == pl.String:
                assert isinstance(value, str), (key, value)
            elif dtype == pl.Int64:
                assert isinstance(value, int) and not isinstance(value, bool), (key, value)
            elif dtype == pl.Float64:
                assert isinstance(value, int | float) and not isinstance(value, bool), (key, value)
        if row["event.dataset"] in ("shop.auth", "shop.payment") and row.get("event.action") in (
            "login",
            "authorize",
        ):
            assert row["event.outcome"] in ("success", "failure")
            if row["event.outcome"] == "failure":
                assert row.get("event.reason")
    assert len(ids) == len(run["ecs"]), "event.id must be unique"
    for dataset in DATASETS - {"shop.account"}:
        assert seen[dataset] > 0, dataset


def test_apm_metrics_every_minute(run: dict[str, Any]) -> None:
    samples = [r for r in run["ecs"] if r["event.dataset"] == "apm.metric"]
    minutes = {int(r["ts"] // 60) for r in samples if r["shop.metric.name"] == "http.requests"}
    assert len(minutes) == MINUTES
    assert all(r["event.kind"] == "metric" for r in samples)


def test_web_logins_appear_in_both_access_log_and_auth_events(run: dict[str, Any]) -> None:
    posts = Counter(
        (r["ip"], int(r["ts"]), r["status"])
        for r in run["nginx"]
        if r["method"] == "POST" and r["path"] == "/login"
    )
    logins = [
        r for r in run["ecs"] if r["event.dataset"] == "shop.auth" and r["event.action"] == "login"
    ]
    assert len(logins) > 100
    for r in logins:
        status = 302 if r["event.outcome"] == "success" else 401
        assert posts[(r["source.ip"], int(r["ts"]), status)] > 0, r


def test_traffic_is_realistic(run: dict[str, Any]) -> None:
    statuses = Counter(r["status"] for r in run["nginx"])
    assert statuses[404] > 0 and statuses[301] > 0 and statuses[500] > 0
    paths = {r["path"] for r in run["nginx"]}
    for expected in ("/", "/login", "/cart", "/checkout", "/api/cart", "/favicon.ico"):
        assert expected in paths
    declines = Counter(
        r.get("shop.payment.decline_code")
        for r in run["ecs"]
        if r["event.dataset"] == "shop.payment"
    )
    assert declines[None] > 0 and declines["insufficient_funds"] > 0
    staff = [r for r in run["ecs"] if r["event.dataset"] == "shop.data_access"]
    assert staff and all(r["user.name"].endswith("@nordhaven.example") for r in staff)


# ------------------------------------------------------------------ determinism


def test_same_seed_same_bytes_other_seed_differs(run: dict[str, Any], tmp_path: Path) -> None:
    again = simulate(
        tmp_path / "b",
        MINUTES,
        seed=11,
        start=START,
        customers=CUSTOMERS,
        history_days=0,
        warmup_hours=0,
    )
    other = simulate(
        tmp_path / "c",
        MINUTES,
        seed=12,
        start=START,
        customers=CUSTOMERS,
        history_days=0,
        warmup_hours=0,
    )
    for name in ("access.log", "events.ndjson", "auth.log", "vpcflow.log", "ground_truth.json"):
        assert (run["dir"] / name).read_bytes() == (again.out_dir / name).read_bytes(), name
        assert (run["dir"] / name).read_bytes() != (other.out_dir / name).read_bytes(), name
    mine = run["truth"]
    theirs = {(c["kind"], c["variant"] or "loud"): c for c in other.campaigns}
    changed_ips = [
        k
        for k in mine
        if mine[k]["entities"].get("source.ip") != theirs[k]["entities"].get("source.ip")
    ]
    changed_params = [k for k in mine if mine[k]["params"] != theirs[k]["params"]]
    assert len(changed_ips) >= 10
    assert len(changed_params) >= 10
    assert [c["start"] for c in mine.values()] != [c["start"] for c in theirs.values()]


def test_output_does_not_depend_on_tick_size() -> None:
    def collect(step: float) -> dict[str, list[str]]:
        sim = Simulator(START, seed=5, customers=400, campaigns=[], end=START.timestamp() + 180)
        got: dict[str, list[str]] = defaultdict(list)
        t = START.timestamp()
        while t < START.timestamp() + 180:
            t += step
            for fmt, lines in sim.tick(t).items():
                got[fmt].extend(lines)
        return dict(got)

    fine, coarse = collect(1.0), collect(60.0)
    assert fine == coarse
    assert len(fine["nginx"]) > 50


# ------------------------------------------------------------------ ground truth


def test_every_kind_is_in_the_ground_truth(run: dict[str, Any]) -> None:
    assert all((c["variant"] is None) == c["benign"] for c in run["campaigns"])
    assert set(run["truth"]) == {(k, v) for k, kind in KINDS.items() for v in kind.variants}
    assert len(run["campaigns"]) == len(run["truth"])
    t0, t1 = START.timestamp(), START.timestamp() + MINUTES * 60
    for kind, variant in run["truth"]:
        start, end, c = _window(run, kind, variant)
        assert t0 <= start <= end <= t1 + 0.01
        assert c["benign"] == KINDS[kind].benign
        assert c["rule.category"] in CATEGORIES


def _failed_logins(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        r
        for r in run["ecs"]
        if r["event.dataset"] == "shop.auth"
        and r["event.action"] == "login"
        and r["event.outcome"] == "failure"
    ]


def test_credential_stuffing_tries_a_combo_list(run: dict[str, Any]) -> None:
    start, end, c = _window(run, "credential_stuffing")
    ips = c["entities"]["source.ip"]
    mine = [r for r in _failed_logins(run) if r["source.ip"] in ips]
    assert mine and all(start <= r["ts"] <= end + 2 for r in mine)
    customers = {r["user.name"] for r in mine if r["event.reason"] == "bad_password"}
    assert customers <= set(c["entities"]["user.name"]), (
        "every real account tried is a named victim"
    )
    reasons = Counter(r["event.reason"] for r in _failed_logins(run) if r["source.ip"] in ips)
    assert reasons["unknown_user"] > reasons["bad_password"]


def test_brute_force_hammers_few_accounts(run: dict[str, Any]) -> None:
    start, end, c = _window(run, "brute_force")
    ip = c["entities"]["source.ip"][0]
    fails = [r for r in _failed_logins(run) if r["source.ip"] == ip]
    assert fails
    assert {r["user.name"] for r in fails} <= set(c["entities"]["user.name"])
    assert all(start <= r["ts"] <= end for r in fails)


def test_corporate_nat_is_many_users_few_failures(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "corporate_nat")
    ip = c["entities"]["source.ip"][0]
    assert len(c["entities"]["user.name"]) >= 10
    hits = [r for r in run["nginx"] if r["ip"] == ip]
    assert hits, "the office should browse the shop"
    fails = sorted(r["ts"] for r in _failed_logins(run) if r["source.ip"] == ip)
    for i, t in enumerate(fails):
        assert sum(1 for u in fails[i:] if u - t < 600) <= 5


def test_search_crawler_is_polite_and_from_published_ranges(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "search_crawler")
    bot = c["params"]["bot"]
    nets = [ipaddress.IPv4Network(n) for n in CRAWLER_RANGES[bot]]
    for ip in c["entities"]["source.ip"]:
        assert any(ipaddress.IPv4Address(ip) in n for n in nets)
    hits = [r for r in run["nginx"] if r["ip"] in c["entities"]["source.ip"]]
    assert len(hits) >= 2
    assert all(bot.lower() in r["ua"].lower() for r in hits)
    assert not any(
        r["path"].startswith(("/cart", "/checkout", "/search", "/account", "/login")) for r in hits
    )
    span = hits[-1]["ts"] - hits[0]["ts"]
    assert len(hits) / max(span, 1.0) <= 3.0
    assert hits[0]["path"] == "/robots.txt"


def test_vuln_scanner_sweeps_sensitive_paths(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "vuln_scanner")
    hits = [r for r in run["nginx"] if r["ip"] == c["entities"]["source.ip"][0]]
    assert len(hits) >= 200
    assert sum(r["status"] >= 400 for r in hits) / len(hits) > 0.8
    sensitive = {
        r["path"]
        for r in hits
        if any(s in r["path"] for s in (".env", ".git", "phpmyadmin", "wp-admin", "server-status"))
    }
    assert len(sensitive) >= 5


@pytest.mark.parametrize(
    ("kind", "markers"),
    [
        ("sqli_probe", ("%27", "%22", "UNION", "SLEEP", "sleep", "OR%201", "AND%20")),
        (
            "xss_probe",
            (
                "%3Cscript",
                "%3Cimg",
                "onerror",
                "%3Csvg",
                "javascript%3A",
                "%3CScRiPt",
                "onmouseover",
                "%3Ciframe",
                "%3Cdetails",
                "onload",
            ),
        ),
    ],
)
def test_injection_probes_carry_payloads(
    run: dict[str, Any], kind: str, markers: tuple[str, ...]
) -> None:
    _, _, c = _window(run, kind)
    ips = set(c["entities"]["source.ip"])
    hits = [r for r in run["nginx"] if r["ip"] in ips]
    assert len(hits) >= 20
    loaded = [r for r in hits if any(m in r["target"] for m in markers)]
    bodies = [
        r for r in run["ecs"] if r["event.dataset"] == "http.access" and r["source.ip"] in ips
    ]
    assert len(loaded) + len(bodies) == len(hits)
    assert loaded


def test_scraper_walks_the_catalogue_without_assets(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "scraping")
    for ip in c["entities"]["source.ip"]:
        hits = [r for r in run["nginx"] if r["ip"] == ip]
        assert len(hits) >= 2
        assert not any(r["path"].startswith(("/assets", "/media", "/api/cart")) for r in hits)
        ids = [int(r["path"].split("/")[2]) for r in hits if r["path"].startswith("/products/")]
        rising = sum(b > a for a, b in itertools.pairwise(ids))
        assert len(ids) < 10 or rising / (len(ids) - 1) > 0.8


def test_card_testing_many_small_declined_cards(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "card_testing")
    cards = set(c["entities"]["shop.payment.card.fingerprint"])
    pays = [
        r
        for r in run["ecs"]
        if r["event.dataset"] == "shop.payment" and r.get("shop.payment.card.fingerprint") in cards
    ]
    assert pays
    assert all(r["shop.payment.amount"] <= 5.0 for r in pays)
    assert len(pays) < 30 or sum(r["event.outcome"] == "failure" for r in pays) / len(pays) >= 0.6
    assert {r["source.ip"] for r in pays} <= set(c["entities"]["source.ip"])


def test_ssh_brute_force_tries_many_user_names(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "ssh_brute_force")
    ip = c["entities"]["source.ip"][0]
    failed = [
        r for r in run["syslog"] if "Failed password" in r["msg"] and f"from {ip} " in r["msg"]
    ]
    assert len(failed) >= 20
    users = {
        r["msg"].split(" for ")[1].split(" from ")[0].replace("invalid user ", "") for r in failed
    }
    assert len(users) >= 5 and "root" in users
    botnet = set(run["truth"][("ssh_brute_force", "low_slow")]["entities"]["source.ip"])
    noise = [
        r
        for r in run["syslog"]
        if "Failed password" in r["msg"]
        and r["msg"].split(" from ")[1].split(" ")[0] not in botnet | {ip}
    ]
    per_ip = Counter(r["msg"].split(" from ")[1].split(" ")[0] for r in noise)
    assert all(n < 10 for n in per_ip.values())


def test_forgetful_customer_fails_then_resets(run: dict[str, Any]) -> None:
    _, _, c = _window(run, "forgetful_customer")
    user = c["entities"]["user.name"][0]
    ips = set(c["entities"]["source.ip"])  # the account may be another campaign's target too
    mine = [
        r
        for r in run["ecs"]
        if r.get("user.name") == user
        and r["event.dataset"] == "shop.auth"
        and r.get("source.ip") in ips
    ]
    actions = [(r["event.action"], r["event.outcome"]) for r in mine]
    fails = actions.count(("login", "failure"))
    assert fails >= 1
    assert fails >= c["params"]["failures"]
    assert ("password_reset", "success") in actions
    assert actions.index(("password_reset", "success")) < actions.index(("login", "success"), fails)


def test_flash_sale_brings_real_customers(run: dict[str, Any]) -> None:
    start, end, c = _window(run, "flash_sale")
    sale = [r for r in run["nginx"] if r["path"] == "/category/sale" and start <= r["ts"] <= end]
    assert sale
    assert 3 <= c["params"]["multiplier"] <= 10


def test_no_benign_address_looks_like_a_login_attack(run: dict[str, Any]) -> None:
    attackers = set()
    for c in run["campaigns"]:
        if not c["benign"]:
            attackers |= set(c["entities"].get("source.ip", []))
    per_ip = Counter(r["source.ip"] for r in _failed_logins(run) if r["source.ip"] not in attackers)
    assert per_ip and max(per_ip.values()) < 10
