"""One bad row is a counted reject, never a failed batch: in ``replay`` and in live mode.

Each file holds 1,000 good lines of its format with every line that once crashed the
parser of that format spread among them (``tests/parse/hostile.py``). With the bad lines
the run must give exactly the alerts it gives without them, and list each bad line with
its number and reason.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopwatch.config import FileSource, Settings
from shopwatch.parse import ParseContext, parse_frame
from shopwatch.parse.read import lines_frame
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.live import LiveRunner
from shopwatch.pipeline.service import Service
from tests.parse.hostile import SUFFIX, good_lines, with_bad_lines

FORMATS = ["nginx", "ecs", "syslog", "vpcflow"]


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    options: dict[str, Any] = {
        "data_dir": tmp_path / "data",
        "web": {"enabled": False},
        "enrich": {"geo": {"enabled": False}},
        **extra,
    }
    return Settings.model_validate(options)


def _write(folder: Path, name: str, lines: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def _replay(tmp_path: Path, files: list[Path], out: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "replay", *map(str, files), "--alerts", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env={**os.environ, "COLUMNS": "400"},
    )


def _alert_ids(path: Path) -> list[str]:
    return sorted(json.loads(line)["alert.id"] for line in path.read_text().splitlines())


def test_replay_counts_bad_lines_and_keeps_every_alert(tmp_path: Path) -> None:
    bad_files, clean_files, expected = [], [], {}
    for fmt in FORMATS:
        lines, hostile = with_bad_lines(fmt)
        name = f"{fmt}.{SUFFIX[fmt]}"
        bad_files.append(_write(tmp_path / "bad", name, lines))
        clean_files.append(_write(tmp_path / "clean", name, good_lines(fmt, 1000)))
        expected[fmt] = hostile
    clean = _replay(tmp_path, clean_files, tmp_path / "clean.jsonl")
    assert clean.returncode == 0, clean.stderr
    bad = _replay(tmp_path, bad_files, tmp_path / "bad.jsonl")
    assert bad.returncode == 0, bad.stderr[-3000:]
    want = _alert_ids(tmp_path / "clean.jsonl")
    assert len(want) > 40, "the good lines raise alerts (one per probe series)"
    assert _alert_ids(tmp_path / "bad.jsonl") == want, "the bad lines cost no alert"
    total = sum(len(h) for h in expected.values())
    summary = bad.stdout + bad.stderr
    assert f"4,000 events, {total} malformed" in " ".join(summary.split())
    for fmt in FORMATS:
        for line_no, reason in expected[fmt].items():
            assert f"line {line_no}: {reason}:" in summary, (fmt, line_no, reason)


def test_replay_of_a_truncated_gzip_file_keeps_what_was_read(tmp_path: Path) -> None:
    packed = gzip.compress(("\n".join(good_lines("nginx", 20_000)) + "\n").encode())
    path = tmp_path / "access.log.gz"
    path.write_bytes(packed[: len(packed) // 2])
    run = _replay(tmp_path, [path], tmp_path / "alerts.jsonl")
    assert run.returncode == 0, run.stderr[-3000:]
    summary = " ".join((run.stdout + run.stderr).split())
    assert "unreadable 1" in summary and ": unreadable: 'EOFError" in summary
    assert _alert_ids(tmp_path / "alerts.jsonl"), "the lines before the break raise alerts"


def _recent() -> datetime:
    """An hour ago (whole seconds): live mode bounds event time against the arrival clock."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def _collect(runner: LiveRunner) -> list[pl.DataFrame]:
    got: list[pl.DataFrame] = []
    runner.on_alerts = got.append
    return got


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_live_batch_with_bad_lines_processes_the_good_ones(tmp_path: Path, fmt: str) -> None:
    start = _recent()
    lines, hostile = with_bad_lines(fmt, start=start)
    runs = {}
    for label, batch in (("clean", good_lines(fmt, 1000, start)), ("bad", lines)):
        engine = build_engine(_settings(tmp_path / label), enrichers=[])
        runner = LiveRunner(engine)
        alerts = _collect(runner)
        assert runner.submit(f"{fmt}.{SUFFIX[fmt]}", fmt, batch)
        events = runner.step(wait_s=1.0)
        assert runner.queued == 0
        runs[label] = (events, runner.stats.rejected, engine.stats.rejected, alerts)
    events, rejected, by_reason, alerts = runs["bad"]
    assert events == 1000 and runs["clean"][0] == 1000
    assert rejected == len(hostile)
    assert dict(by_reason) == {r: list(hostile.values()).count(r) for r in set(hostile.values())}
    ids = sorted(i for a in alerts for i in a["alert.id"].to_list())
    want = sorted(i for a in runs["clean"][3] for i in a["alert.id"].to_list())
    assert ids == want
    if fmt != "vpcflow":
        assert want, "the good lines raise alerts"


def _wait_for(predicate, timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_tailed_file_moves_past_a_bad_line_and_keeps_its_alerts(tmp_path: Path) -> None:
    """500 good + 1 bad + 500 good lines: every alert, the offset past the end, no re-read."""
    start = _recent()
    lines = good_lines("nginx", 1000, start)
    lines.insert(500, lines[500].rsplit(" ", 1)[0] + " 100000000000")  # request time 1e11 s
    log = _write(tmp_path, "access.log", lines)
    settings = _settings(tmp_path, sources={"files": [FileSource(path=str(log), format="nginx")]})
    clean = build_engine(_settings(tmp_path / "clean"), enrichers=[])
    good_frame = lines_frame(good_lines("nginx", 1000, start))
    good = parse_frame(good_frame, "nginx", ParseContext(str(log)))
    expected = clean.process(good.batch).height
    assert expected > 0
    first = Service(settings, with_web=False)
    first.start()
    try:
        _wait_for(lambda: first.runner.stats.lines == 1001)
        _wait_for(lambda: first.store.count_alerts() >= expected)
        assert first.runner.stats.rejected == 1
        assert first.runner.engine.stats.rejected == {"bad_number": 1}
    finally:
        first.stop()
    second = Service(settings, with_web=False)
    second.start()
    try:
        time.sleep(0.5)
        assert second.runner.stats.lines == 0, "the offset moved past the bad line"
        assert second.store.count_alerts() == first.store.count_alerts()
    finally:
        second.stop()
