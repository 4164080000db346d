"""Every detector fires on its case and stays quiet on its benign look-alike."""

from __future__ import annotations

import polars as pl
import pytest
import yaml

from shopwatch.contract import ALERT_SCHEMA, CATEGORIES, SEVERITIES
from shopwatch.detect.content import load_detectors

from .helpers import CASES, case_file, read_events, run

DETECTORS = {d.id: d for d in load_detectors().detectors}


def test_every_detector_has_a_case_folder() -> None:
    missing = sorted(i for i in DETECTORS if not (CASES / i).is_dir())
    assert not missing, f"detectors without tests/detect/cases/<id>/: {missing}"


def test_no_case_folder_without_a_detector() -> None:
    orphans = sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in DETECTORS)
    assert not orphans, f"case folders for unknown detectors: {orphans}"


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_fires_on_its_case(rule_id: str) -> None:
    expect = yaml.safe_load((CASES / rule_id / "expect.yaml").read_text())["fires"]
    alerts = run(DETECTORS[rule_id], [read_events(case_file(rule_id, "fires"))])
    assert alerts.height >= expect.get("min_alerts", 1)
    assert alerts.schema == pl.Schema(ALERT_SCHEMA)
    row = alerts.row(0, named=True)
    for key, value in expect.get("entity", {}).items():
        assert row["entity"][key] == value
    assert row["rule.id"] == rule_id
    assert row["rule.category"] in CATEGORIES
    assert row["severity"] in SEVERITIES
    assert 0 <= row["risk_score"] <= 100
    assert row["event.ids"], "an alert names the events behind it"
    assert row["message"] and "{" not in row["message"], row["message"]


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_no_detector_fires_on_a_benign_look_alike(rule_id: str) -> None:
    events = read_events(case_file(rule_id, "benign"))
    assert events.height >= 5, "a look-alike needs real traffic"
    noisy = {}
    for det_id, detector in DETECTORS.items():
        alerts = run(detector, [events])
        if alerts.height:
            noisy[det_id] = alerts["message"].to_list()
    assert not noisy, f"benign look-alike of {rule_id} raised alerts: {noisy}"
