"""The default detectors on the simulator's campaigns, scored by ``shopwatch evaluate``.

The simulator draws every campaign from documented real-world ranges and knows nothing of
the rules (docs/simulator.md), so most low-and-slow campaigns and the commerce attacks are
missed today: ``shopwatch evaluate sim`` reports that, and CI holds its figures above
floors. What these tests pin down, on three seeds the rules were never tuned on:

- the loud form of every attack the shipped rules cover is caught, with its category (on
  other seeds a loud campaign can be drawn too spread out for per-address rules, e.g. a
  stuffing list over 166 addresses at 11 tries each: ``evaluate`` reports it as missed);
- no benign look-alike (office NAT, mobile carrier NAT, crawlers, a forgetful customer,
  a declined card retried, a bulk export in office hours, a customer moving house, a flash
  sale) raises an alert;
- no alert names an entity that no attack involves.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from shopwatch.evaluate.campaigns import evaluate_dir
from shopwatch.sim import simulate

pytestmark = pytest.mark.slow

#: Attack kinds whose loud form the shipped rules cover (signatures, per-IP/account rates and
#: a flood's rate on one path).
COVERED_LOUD = {
    "brute_force",
    "credential_stuffing",
    "vuln_scanner",
    "sqli_probe",
    "xss_probe",
    "ssh_brute_force",
    "http_flood",
}
#: Seeds to replay; SIM_SEEDS=1,2,3 tries others.
SEEDS = [int(s) for s in os.environ.get("SIM_SEEDS", "5,29,4242").split(",")]


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def figures(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    out: Path = tmp_path_factory.mktemp(f"sim{request.param}")
    simulate(out, minutes=20, seed=request.param, customers=1500)
    result = evaluate_dir(out)
    assert result["rejected"] == 0
    reviews = set()
    with (out / "events.ndjson").open(encoding="utf-8") as lines:
        for line in lines:
            if '"/api/reviews"' in line:
                event = json.loads(line)
                if event.get("http", {}).get("response", {}).get("status_code") == 201:
                    reviews.add(event["event"]["id"])
    result["_reviews"] = reviews
    return result


@pytest.fixture(scope="module")
def review_events(figures: Any) -> set[str]:
    """The ids of the customers' product reviews the run posted (answered 201)."""
    reviews: set[str] = figures["_reviews"]
    return reviews


def test_loud_covered_attacks_are_caught_with_their_category(figures: Any) -> None:
    loud = [
        c
        for c in figures["campaigns"]
        if not c["benign"] and c["variant"] == "loud" and c["type"] in COVERED_LOUD
    ]
    assert {c["type"] for c in loud} == COVERED_LOUD
    missed = [c["id"] for c in loud if not c["detected"]]
    assert not missed, f"loud campaigns raised no alert: {missed}"
    wrong = [(c["id"], c["rules"]) for c in loud if not c["category_matched"]]
    assert not wrong, f"caught, but not as their category: {wrong}"


def test_benign_look_alikes_stay_quiet(figures: Any) -> None:
    noisy = [(c["id"], c["rules"]) for c in figures["campaigns"] if c["benign"] and c["alerts"]]
    assert not noisy, f"benign look-alikes raised alerts: {noisy}"
    assert figures["benign_false_alerts"] == 0


def test_no_alert_points_at_an_innocent_entity(figures: Any, review_events: set[str]) -> None:
    # But a customer's review whose text is a SQL look-alike ("Colour is 'forest' -- ..."),
    # which a fresh install alerts on until ten networks wrote such text in that field
    # (docs/exemptions.md): every other alert is on an attack.
    strays = [e for e in figures["fp_alert_events"] if e not in review_events]
    assert not strays, f"alerts on entities of no attack campaign: {figures['fp_alert_rules']}"
    assert set(figures["fp_alert_rules"]) <= {"web.injection_tokenizer", "web.sqli_probe"}
    assert figures["benign_customers"] > 0
    assert figures["benign_customers_alerted"] == 0
    assert figures["benign_addresses_alerted"] == 0
