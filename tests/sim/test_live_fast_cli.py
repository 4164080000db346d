"""The live feed, the fast access-log generator and the ``shopwatch simulate`` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from shopwatch.cli.main import app
from shopwatch.errors import ConfigError
from shopwatch.sim import KINDS, LiveFeed, plan_campaigns
from shopwatch.sim.engine import TARGET_GAP_S
from shopwatch.sim.fast import write_access_log
from shopwatch.sim.gen_ops import TARGETS
from tests.sim.formats import NGINX, nginx_rows

START = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)


def test_live_feed_shows_an_attack_within_the_first_minute() -> None:
    feed = LiveFeed(START, seed=4, customers=500)
    got: dict[str, list[str]] = {"nginx": [], "ecs": [], "syslog": [], "vpcflow": []}
    for second in range(1, 61):
        for fmt, lines in feed.tick(START + timedelta(seconds=second)).items():
            got[fmt].extend(lines)
    attacks = [c for c in feed.ground_truth if not c["benign"]]
    assert attacks, "an attack campaign should start within the first minute"
    ips = set(attacks[0]["entities"]["source.ip"])
    attack_lines = [line for line in got["nginx"] if line.split(" ", 1)[0] in ips]
    assert len(attack_lines) >= 10
    assert all(NGINX.match(line) for line in got["nginx"])
    assert got["vpcflow"], "the first minute's flow records come once it has ended"


def test_live_feed_keeps_injecting_campaigns() -> None:
    feed = LiveFeed(START, seed=4, customers=500)
    feed.tick(START + timedelta(minutes=15))
    kinds = [c["kind"] for c in feed.ground_truth if not c["benign"]]
    assert len(kinds) >= 4 and len(set(kinds)) >= 3


def test_fast_generator_writes_exactly_the_lines_asked(tmp_path: Path) -> None:
    kinds = ["vuln_scanner", "brute_force", "search_crawler"]
    truth = write_access_log(
        tmp_path / "a.log", 30_000, seed=3, start=START, minutes=60, customers=500, campaigns=kinds
    )
    rows = nginx_rows(tmp_path / "a.log")
    assert len(rows) == 30_000
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)
    assert {c["kind"] for c in truth} == set(kinds)
    assert {c["variant"] for c in truth if not c["benign"]} == {"loud", "low_slow"}
    scanner = next(c for c in truth if c["kind"] == "vuln_scanner" and c["variant"] == "loud")[
        "entities"
    ]["source.ip"][0]
    hits = [r for r in rows if r["ip"] == scanner]
    assert len(hits) >= 200 and sum(r["status"] >= 400 for r in hits) / len(hits) > 0.8
    benign = [r for r in rows if r["ip"] != scanner]
    assert {"/", "/api/cart", "/assets/js/app.c41d07.js"} <= {r["path"] for r in benign}
    again = write_access_log(
        tmp_path / "b.log", 30_000, seed=3, start=START, minutes=60, customers=500, campaigns=kinds
    )
    assert (tmp_path / "a.log").read_bytes() == (tmp_path / "b.log").read_bytes()
    assert again == truth


def test_fast_generator_refuses_too_few_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="too few"):
        write_access_log(tmp_path / "a.log", 500, seed=3, start=START, minutes=60, customers=500)


def test_cli_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--out",
            str(out),
            "--minutes",
            "4",
            "--seed",
            "2",
            "--customers",
            "300",
            "--start",
            "2025-06-03T09:00:00Z",
            "--campaigns",
            "brute_force,vuln_scanner,ssh_brute_force",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("access.log", "events.ndjson", "auth.log", "vpcflow.log"):
        assert (out / name).stat().st_size > 0
    truth = json.loads((out / "ground_truth.json").read_text())
    assert sorted((c["kind"], c["variant"]) for c in truth) == [
        (k, v)
        for k in ("brute_force", "ssh_brute_force", "vuln_scanner")
        for v in ("loud", "low_slow")
    ]
    assert truth[0]["start"].startswith("2025-06-03T09:0")
    assert "access.log" in result.output


def test_cli_rejects_unknown_campaigns(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app, ["simulate", "--out", str(tmp_path), "--minutes", "1", "--campaigns", "ddos"]
    )
    assert result.exit_code == 2
    assert not (tmp_path / "access.log").exists()


@pytest.mark.parametrize("seed", range(1, 13))
def test_a_look_alike_never_overlaps_an_attack_on_what_it_slows(seed: int) -> None:
    """An alert about the gateway's latency is about the blip or the shift, never both."""
    plans = plan_campaigns(seed, START, 30)
    by_target: dict[str, list[Any]] = {}
    for p in plans:
        target = TARGETS.get((p.kind, p.variant))
        if target:
            by_target.setdefault(target, []).append(p)
    blips = [p for p in by_target["gateway"] if KINDS[p.kind].benign]
    assert len(blips) == 1  # a 30-minute run always has room for it
    for blip in blips:
        for a in by_target["gateway"]:
            if a is blip:
                continue
            # the blip (at most 3 minutes) and the gap end before the attack begins
            assert blip.start + blip.minutes * 60 + TARGET_GAP_S <= a.start


def test_short_runs_still_hold_every_campaign() -> None:
    plans = plan_campaigns(1, START, 10)
    # A look-alike that slows what an attack slows needs room before it (see below).
    kept = {(p.kind, p.variant) for p in plans}
    missing = {(k, v) for k, kind in KINDS.items() for v in kind.variants} - kept
    assert missing <= {("latency_blip", "loud")}
    assert len(plans) == len(kept)
    for p in plans:
        assert (
            START.timestamp() <= p.start
            and p.start + p.minutes * 60 <= START.timestamp() + 600 + 0.01
        )
    with pytest.raises(ConfigError):
        plan_campaigns(1, START, 10, ["nope"])
