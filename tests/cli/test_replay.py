"""``shopwatch replay`` as a user runs it: files, gzip, stdin, malformed lines, determinism."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from shopwatch.pipeline.merge import matched_rules
from shopwatch.sim import simulate

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty minutes of the simulated shop, every campaign included."""
    out = tmp_path_factory.mktemp("shop")
    simulate(out, minutes=20, seed=11, customers=1500)
    return out


def replay(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "replay", *args],
        input=stdin.decode() if stdin else None,
        capture_output=True,
        text=True,
        timeout=300,
    )


def alerts_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_runs_give_identical_alerts(shop: Path, tmp_path: Path) -> None:
    files = [str(shop / n) for n in ("access.log", "events.ndjson", "auth.log", "vpcflow.log")]
    first = replay(*files, "--format", "auto", "--alerts", str(tmp_path / "a.jsonl"))
    second = replay(*reversed(files), "--alerts", str(tmp_path / "b.jsonl"))
    assert first.returncode == 0 and second.returncode == 0, first.stderr
    a, b = alerts_of(tmp_path / "a.jsonl"), alerts_of(tmp_path / "b.jsonl")
    assert a, "the simulated campaigns raise alerts"
    assert sorted(x["alert.id"] for x in a) == sorted(x["alert.id"] for x in b)
    again = replay(*files, "--alerts", str(tmp_path / "c.jsonl"))
    assert again.returncode == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "c.jsonl").read_bytes(), (
        "same files, same bytes"
    )
    for alert in a:
        assert {
            "alert.id",
            "@timestamp",
            "rule.id",
            "rule.name",
            "rule.category",
            "severity",
            "risk_score",
            "entity",
            "event.ids",
            "message",
        } <= alert.keys()


def test_malformed_lines_are_counted_with_line_numbers(shop: Path, tmp_path: Path) -> None:
    log = tmp_path / "mixed.log"
    good = (shop / "access.log").read_text().splitlines()[:50]
    good[9] = "this is not an access log line"
    good[29] = good[29][: len(good[29]) // 2]  # cut in the middle, like a crash mid-write
    log.write_text("\n".join(good) + "\n")
    run = replay(str(log), "--alerts", str(tmp_path / "out.jsonl"))
    assert run.returncode == 0, run.stderr
    assert "2 malformed" in run.stderr
    assert "line 10: no_match" in run.stderr and "line 30: no_match" in run.stderr


def test_gzip_and_standard_input(shop: Path, tmp_path: Path) -> None:
    plain = shop / "access.log"
    packed = tmp_path / "access.log.1.gz"
    with plain.open("rb") as src, gzip.open(packed, "wb") as dst:
        shutil.copyfileobj(src, dst)
    from_plain = replay(str(plain), "-o", str(tmp_path / "plain.jsonl"))
    from_gz = replay(str(packed), "-o", str(tmp_path / "gz.jsonl"))
    from_stdin = replay(
        "-", "--format", "nginx", "-o", str(tmp_path / "stdin.jsonl"), stdin=plain.read_bytes()
    )
    assert from_plain.returncode == from_gz.returncode == from_stdin.returncode == 0
    ids = {
        p: [a["rule.id"] for a in alerts_of(tmp_path / f"{p}.jsonl")]
        for p in ("plain", "gz", "stdin")
    }
    assert ids["plain"] and ids["plain"] == ids["gz"] == ids["stdin"]
    first = alerts_of(tmp_path / "stdin.jsonl")[0]
    assert all(e.startswith("-:") for e in first["event.ids"]), "stdin events are named -:<line>"


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = replay(str(tmp_path / "nope.log"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    log = tmp_path / "x.log"
    log.write_text("x\n")
    bad_format = replay(str(log), "--format", "cobol")
    assert bad_format.returncode == 2 and "known formats" in bad_format.stderr


def test_dash_writes_alerts_to_standard_output(tmp_path: Path) -> None:
    case = Path(__file__).resolve().parents[1] / "detect" / "cases" / "web.sqli_probe" / "fires.log"
    run = subprocess.run(
        [sys.executable, "-m", "shopwatch", "replay", str(case), "-o", "-"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "-").exists(), "'-' is standard output, not a file"
    alerts = [json.loads(line) for line in run.stdout.splitlines()]
    matched = {r for a in alerts for r in matched_rules(a["rule.id"], a.get("details"))}
    assert alerts and matched >= {"web.sqli_probe"}
    assert "replayed" in run.stderr and "standard output" in run.stderr


def test_the_summary_counts_requests_a_written_exemption_kept_from_a_rule(tmp_path: Path) -> None:
    line = (
        '84.155.{i}.61 - - [14/Mar/2026:09:0{i}:38 +0000] "GET /search?q=2l+bladder%3B+drop+table+'
        'cover HTTP/1.1" 200 5120 "-" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0"\n'
    )
    log = tmp_path / "access.log"
    log.write_text("".join(line.format(i=i) for i in range(3)))
    config = tmp_path / "shopwatch.yml"
    config.write_text(
        "detect:\n  exemptions:\n    fixed:\n"
        "      - {endpoint: /search, field: 'query:q', rules: [web.sqli_probe]}\n"
    )
    plain = replay(str(log), "--alerts", str(tmp_path / "a.jsonl"))
    assert plain.returncode == 0, plain.stderr
    assert "web.sqli_probe" in {
        r
        for a in alerts_of(tmp_path / "a.jsonl")
        for r in matched_rules(a["rule.id"], a.get("details"))
    }
    done = replay(str(log), "-c", str(config), "--alerts", str(tmp_path / "b.jsonl"))
    assert done.returncode == 0, done.stderr
    assert "web.sqli_probe" not in {
        r
        for a in alerts_of(tmp_path / "b.jsonl")
        for r in matched_rules(a["rule.id"], a.get("details"))
    }
    assert "only fields exempt from the rule matched" in done.stdout + done.stderr
    assert "web.sqli_probe 3" in done.stdout + done.stderr
