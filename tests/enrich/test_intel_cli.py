"""``shopwatch intel lookup`` and ``shopwatch intel status`` on real feed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from shopwatch.cli import intel as intel_cli
from shopwatch.cli.common import setup_logging
from shopwatch.config import Settings
from shopwatch.enrich.schedule import FeedManager


@pytest.fixture()
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> typer.Typer:
    monkeypatch.setenv("SHOPWATCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(
        intel_cli,
        "CONTEXT_HOOKS",
        [lambda value: {"geo": {"country": "XX"}} if value[0].isdigit() else None],
    )
    root = typer.Typer()
    root.callback()(lambda: setup_logging("warning"))  # logs on stderr, as the real CLI does
    intel_cli.register(root)
    return root


@pytest.fixture()
def feeds(tmp_path: Path, datasets: Path) -> Path:
    root = datasets / "threat-intel"
    listing = tmp_path / "feeds.yaml"
    listing.write_text(
        f"- name: feodo\n  path: {root / 'feodotracker_ipblocklist.csv'}\n  format: abusech_csv\n"
        "  confidence: 95\n  type: botnet_c2\n  ttl: 7d\n"
        f"- name: drop\n  path: {root / 'spamhaus_drop.txt'}\n  format: spamhaus\n  confidence: 85\n  ttl: null\n"
        f"- name: gone\n  path: {tmp_path / 'missing.netset'}\n  format: netset\n"
    )
    return listing


def test_lookup_explains_each_feed(app: typer.Typer, feeds: Path) -> None:
    result = CliRunner().invoke(
        app, ["intel", "lookup", "1.10.16.77", "--feeds-config", str(feeds), "--json"]
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["listed"] is True
    found = {(m["feed"], m["indicator"]) for m in out["matches"]}
    assert ("drop", "1.10.16.0/20") in found and ("shopwatch_demo", "1.10.16.0/20") in found
    drop = next(m for m in out["matches"] if m["feed"] == "drop")
    assert drop["confidence"] == 85 and drop["expires"] is None and drop["note"] == "SBL256894"
    assert out["context"] == {"geo": {"country": "XX"}}
    assert out["feeds_failed"] == ["gone"]


def test_lookup_shows_expired_indicators(app: typer.Typer, feeds: Path) -> None:
    # the Feodo sample is from April 2024: with a 7 day ttl its rows have expired today
    result = CliRunner().invoke(
        app, ["intel", "lookup", "192.9.135.73", "--feeds-config", str(feeds), "--json"]
    )
    out = json.loads(result.stdout)
    assert out["listed"] is False
    assert [(m["feed"], m["expired"], m["expires"]) for m in out["matches"]] == [
        ("feodo", True, "2024-04-08T00:00:00+00:00")
    ]


def test_lookup_of_a_clean_address(app: typer.Typer, feeds: Path) -> None:
    result = CliRunner().invoke(app, ["intel", "lookup", "1.10.32.7", "--feeds-config", str(feeds)])
    assert result.exit_code == 0
    assert "on none of 4 feeds" in result.stdout


def test_status_lists_feeds_and_errors(app: typer.Typer, feeds: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["intel", "status", "--feeds-config", str(feeds), "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.stdout)["feeds"]}
    assert list(rows) == ["shopwatch_demo", "feodo", "drop", "gone"]
    assert rows["drop"]["entries"] == 1385 and rows["drop"]["last_refresh"]
    assert rows["feodo"]["entries"] == 0 and rows["feodo"]["expired"] == 28
    assert rows["gone"]["last_error_reason"] == "missing" and rows["gone"]["errors"] == 1
    assert not (tmp_path / "data").exists()  # the command wrote nothing
    cached = CliRunner().invoke(app, ["intel", "status", "--feeds-config", str(feeds), "--cached"])
    assert cached.exit_code == 2 and "is the service running?" in " ".join(cached.output.split())
    # what a running service writes is what --cached shows
    service = FeedManager.from_settings(
        Settings(data_dir=tmp_path / "data", intel={"feeds_file": feeds}), persist=True
    )
    service.refresh()
    cached = CliRunner().invoke(app, ["intel", "status", "--feeds-config", str(feeds), "--cached"])
    assert cached.exit_code == 0 and "gone" in cached.stdout


def test_lookup_writes_nothing_where_it_runs(
    app: typer.Typer, feeds: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SHOPWATCH_DATA_DIR")  # the default data_dir: ./data
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for command in (["lookup", "1.10.16.77"], ["status"]):
        result = CliRunner().invoke(app, ["intel", *command, "--feeds-config", str(feeds)])
        assert result.exit_code == 0, result.output
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize("value", ["notanip", "1.2.3.4.5", "", "http//x"])
def test_lookup_of_something_that_is_no_indicator_is_a_usage_error(
    app: typer.Typer, feeds: Path, value: str
) -> None:
    result = CliRunner().invoke(app, ["intel", "lookup", value, "--feeds-config", str(feeds)])
    assert result.exit_code == 2
    assert "is not an IP address, network, domain, URL or file hash" in " ".join(
        result.output.split()
    )


def test_bad_feed_list_is_a_usage_error(app: typer.Typer, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  format: netset\n")
    result = CliRunner().invoke(app, ["intel", "status", "--feeds-config", str(bad)])
    assert result.exit_code == 2
    assert "exactly one of url and path" in " ".join(result.output.split())
