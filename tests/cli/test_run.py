"""``shopwatch run --config`` as a subprocess: tails a file, stores alerts, exits cleanly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shopwatch.pipeline.merge import matched_rules
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
        rules = {r for a in store.alerts() for r in matched_rules(a.rule_id, a.details)}
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


def run_config(tmp_path: Path, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "shopwatch.yaml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n" + text)
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "run", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_mistyped_format_is_refused_at_start(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(CASE.read_text())
    run = run_config(
        tmp_path,
        f"web: {{enabled: false}}\nsources:\n  files:\n    - {{path: {log}, format: nginxx}}\n",
        "--duration",
        "3",
        "--plain",
    )
    assert run.returncode == 2, run.stderr
    assert "sources.files[0].format is 'nginxx'" in run.stderr
    assert "known formats" in run.stderr and "nginx" in run.stderr
    assert "Traceback" not in run.stderr


def test_every_config_problem_is_listed_at_once(tmp_path: Path) -> None:
    run = run_config(
        tmp_path,
        "web: {port: 70000}\n"
        "sources:\n"
        f"  files:\n    - {{path: {tmp_path / 'nope' / 'access.log'}, format: nginx}}\n"
        "  syslog: {port: 8081, protocols: [tcp]}\n"
        "  http: {enabled: true, port: 8081}\n",
    )
    assert run.returncode == 2, run.stderr
    err = " ".join(run.stderr.split())
    assert "web.port is 70000" in err
    assert "does not exist" in err
    assert "sources.http is enabled without a token" in err
    assert "sources.http.port and sources.syslog.port are both 8081" in err
    assert not (tmp_path / "data").exists(), "nothing is started or created"


def test_binding_every_interface_is_warned_about(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(CASE.read_text())
    run = run_config(
        tmp_path,
        "web: {host: 0.0.0.0, port: 0}\n"
        f"sources:\n  files:\n    - {{path: {log}, format: nginx}}\n",
        "--duration",
        "1",
        "--plain",
    )
    assert run.returncode == 0, run.stderr
    err = " ".join(run.stderr.split())
    assert "warning: web 0.0.0.0:0 listens on every interface" in err
