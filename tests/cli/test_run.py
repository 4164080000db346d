"""``shopwatch run --config`` as a subprocess: tails a file, stores alerts, exits cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shopwatch.store import Store

CASE = Path(__file__).resolve().parents[1] / "detect" / "cases" / "web.sqli_probe" / "fires.log"


def test_run_tails_a_configured_file(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(CASE.read_text())
    config = tmp_path / "shopwatch.yaml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "web: {enabled: false}\n"
        f"sources:\n  files:\n    - {{path: {log}, format: nginx}}\n"
    )
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "shopwatch",
            "run",
            "--config",
            str(config),
            "--duration",
            "6",
            "--plain",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    with Store(f"sqlite:///{tmp_path / 'data' / 'shopwatch.db'}") as store:
        rules = {a.rule_id for a in store.alerts()}
    assert "web.sqli_probe" in rules


def test_run_without_sources_is_a_usage_error(tmp_path: Path) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text(f"data_dir: {tmp_path}\n")
    run = subprocess.run(
        [sys.executable, "-m", "shopwatch", "run", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 2 and "names no source" in run.stderr
