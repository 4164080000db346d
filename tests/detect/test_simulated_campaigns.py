"""The default detectors on the simulator's campaigns: every attack they cover is caught,
every benign look-alike stays quiet, and no alert points at an innocent entity.

Seeds the rules were never tuned on vary the campaigns' intensity, timing, addresses and
targets; each seed is replayed through the full pipeline (parse, enrich, detect).
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from shopwatch.config import Settings
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.replay import replay
from shopwatch.sim import simulate

#: Campaign kinds the detectors of this release cover (card testing and scraping come with
#: the detection library).
COVERED = {
    "brute_force",
    "credential_stuffing",
    "vuln_scanner",
    "sqli_probe",
    "xss_probe",
    "ssh_brute_force",
}
#: Seeds to replay; SIM_SEEDS=1,2,3 tries others.
SEEDS = [int(s) for s in os.environ.get("SIM_SEEDS", "5,29,4242").split(",")]


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module", params=SEEDS, ids=[f"seed{s}" for s in SEEDS])
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[list[dict], pl.DataFrame]:
    out = tmp_path_factory.mktemp(f"sim{request.param}")
    result = simulate(out, minutes=20, seed=request.param, customers=1500)
    truth = json.loads(Path(result.ground_truth).read_text())
    engine = build_engine(Settings(data_dir=out / "data"))
    frames: list[pl.DataFrame] = []
    files = [str(p) for p in result.files.values()]
    report = replay(files, engine, on_alerts=frames.append)
    assert report.rejected == 0
    alerts = pl.concat(frames) if frames else pl.DataFrame()
    return truth, alerts


def _entities(alerts: pl.DataFrame) -> list[tuple[datetime, str, dict[str, str]]]:
    return [
        (row["@timestamp"], row["rule.category"], {k: v for k, v in row["entity"].items() if v})
        for row in alerts.iter_rows(named=True)
    ]


def _matches(campaign: dict, entity: dict[str, str]) -> bool:
    wanted = campaign["entities"]
    return any(value in wanted.get(key, []) for key, value in entity.items())


def test_every_covered_attack_is_caught_in_time(run: tuple[list[dict], pl.DataFrame]) -> None:
    truth, alerts = run
    found = _entities(alerts)
    for campaign in truth:
        if campaign["benign"] or campaign["kind"] not in COVERED:
            continue
        start, end = _time(campaign["start"]), _time(campaign["end"])
        hits = [
            (at, cat)
            for at, cat, entity in found
            if _matches(campaign, entity) and start <= at <= end + timedelta(minutes=1)
        ]
        assert hits, f"campaign {campaign['id']} ({campaign['kind']}) raised no alert"
        assert any(cat == campaign["rule.category"] for _, cat in hits), (campaign["id"], hits)


def test_benign_look_alikes_stay_quiet(run: tuple[list[dict], pl.DataFrame]) -> None:
    truth, alerts = run
    found = _entities(alerts)
    for campaign in truth:
        if not campaign["benign"]:
            continue
        ips = set(campaign["entities"].get("source.ip", []))
        noisy = [(cat, e) for _, cat, e in found if e.get("source.ip") in ips]
        assert not noisy, f"benign {campaign['kind']} raised {noisy}"


def test_no_alert_points_at_an_innocent_entity(run: tuple[list[dict], pl.DataFrame]) -> None:
    truth, alerts = run
    attacks = [c for c in truth if not c["benign"]]
    stray = [
        (cat, e) for _, cat, e in _entities(alerts) if not any(_matches(c, e) for c in attacks)
    ]
    assert not stray, f"alerts on entities of no attack campaign: {stray[:5]}"
