"""``shopwatch rules lint`` and ``shopwatch detectors`` as subprocesses.

Lint refuses what the Polars regex engine cannot run (exit 1, file:line, pattern and the
engine's reason on stderr, printed whole); ``detectors --url`` shows the live status of a
running service's detectors through its authenticated API.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import KeyedState, build
from shopwatch.pipeline.engine import Engine
from shopwatch.store import Store
from shopwatch.web.app import create_app, serve

HUGE = "|".join(rf"\w+{i}\w+" for i in range(2000))

#: (name, pattern as written in single-quoted YAML, words of the engine's reason)
REFUSED = [
    ("look_ahead", "[a-z]+(?=select)", "look-around"),
    ("look_behind", "(?<=/)etc/passwd", "look-around"),
    ("back_reference", "(['\"]).*\\1", "backreferences are not supported"),
    ("size_limit", HUGE, "exceeds size limit"),
]


def shopwatch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def write_rule(folder: Path, pattern: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bad.yaml"
    quoted = pattern.replace("'", "''")
    path.write_text(
        "id: test.bad_regex\n"
        "kind: threshold\n"
        "category: web_attack\n"
        "where:\n"
        f"  url.original|decoded: {{regex: '{quoted}'}}\n"
        "group_by: [source.ip]\n"
        "count: {at_least: 1, within: 1m}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.parametrize(("name", "pattern", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_lint_refuses_what_the_engine_cannot_run(
    tmp_path: Path, name: str, pattern: str, reason: str
) -> None:
    path = write_rule(tmp_path / "rules", pattern)
    run = shopwatch("rules", "lint", "--rules-dir", str(tmp_path / "rules"), cwd=tmp_path)
    assert run.returncode == 1, run.stderr
    (line,) = [x for x in run.stderr.splitlines() if "test.bad_regex" in x]
    assert f"{path}:5" in line
    assert reason in line
    assert pattern[:60] in line  # as written: no markup eaten, no wrapping
    assert "1 invalid" in run.stderr


def test_lint_passes_the_shipped_rules(tmp_path: Path) -> None:
    run = shopwatch("rules", "lint", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "0 invalid" in run.stderr


def test_detectors_lists_a_refused_rule_as_skipped_with_its_reason(tmp_path: Path) -> None:
    path = write_rule(tmp_path / "rules", "(?<=/)etc/passwd")
    run = shopwatch("detectors", "--json", "--rules-dir", str(tmp_path / "rules"), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = json.loads(run.stdout)
    assert "test.bad_regex" not in {r["id"] for r in rows}
    assert all(r["status"] == "ok" for r in rows)
    assert f"{path}:5" in run.stderr and "look-around" in run.stderr


T0 = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
TOKEN = "detector-status-token-0123456789"


class Broken:
    """A detector that raises at run time, as a regex refused on every batch did."""

    id = "test.broken"
    category = "anomaly"
    keys = ()
    needs = frozenset({"@timestamp"})
    spec = build(
        {
            "id": "test.broken",
            "kind": "threshold",
            "category": "anomaly",
            "group_by": ["source.ip"],
            "count": {"at_least": 1, "within": "1m"},
        }
    ).spec

    def detect(self, batch: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        raise pl.exceptions.ComputeError("regex error: look-around is not supported")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A web API over an engine that has run three batches with one broken detector."""
    good = build(
        {
            "id": "test.logins",
            "kind": "threshold",
            "category": "brute_force",
            "where": {"event.outcome": "failure"},
            "group_by": ["source.ip"],
            "count": {"at_least": 3, "within": "1m"},
        }
    )
    engine = Engine([Broken(), good])  # type: ignore[list-item]
    for i in range(3):
        engine.process(
            conform(
                pl.DataFrame(
                    {
                        "@timestamp": [T0 + timedelta(seconds=i)],
                        "source.ip": ["203.0.113.7"],
                        "event.outcome": ["failure"],
                    }
                )
            )
        )
    store = Store.open(f"sqlite:///{tmp_path / 'api.db'}")
    app = create_app(store, token=TOKEN, stats=lambda: {"detectors": engine.health.as_dict()})
    server = serve(app, port=0)
    try:
        yield f"http://127.0.0.1:{server.port}", engine
    finally:
        server.stop()
        store.close()


def test_detectors_url_shows_a_failing_detector_with_its_last_error_and_count(
    tmp_path: Path, service: tuple[str, Engine]
) -> None:
    url, _ = service
    run = shopwatch("detectors", "--json", "--url", url, "--token", TOKEN, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rows = {r["id"]: r for r in json.loads(run.stdout)}
    broken = rows["test.broken"]
    assert broken["status"] == "failing"
    assert broken["errors"] == 3
    assert "look-around is not supported" in broken["last_error"]
    assert "ComputeError" in broken["last_error"]
    assert rows["test.logins"]["status"] == "ok" and rows["test.logins"]["errors"] == 0


def test_detectors_url_table_names_the_failure(tmp_path: Path, service: tuple[str, Engine]) -> None:
    url, _ = service
    run = shopwatch("detectors", "--url", url, "--token", TOKEN, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    row, last = [x for x in run.stdout.splitlines() if "test.broken" in x]
    assert "failing" in row and "3" in row
    assert "last error: ComputeError: regex error: look-around is not supported" in last
    assert "1 failing" in run.stdout


def test_detectors_url_needs_the_token(tmp_path: Path, service: tuple[str, Engine]) -> None:
    url, _ = service
    run = shopwatch("detectors", "--url", url, "--token", "wrong-token-wrong-token", cwd=tmp_path)
    assert run.returncode == 2
    assert "401" in run.stderr and "token" in run.stderr
