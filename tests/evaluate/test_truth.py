"""Scoring alerts against a CSV of labelled entities; the real logs with their weak labels."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopwatch.contract import Alert
from shopwatch.errors import ConfigError
from shopwatch.evaluate.truth import read_labels, score_labels

T0 = datetime(2025, 6, 3, 8, 0, tzinfo=UTC)


def _alert(minutes: float, **entity: str) -> Alert:
    entity = {k.replace("_", "."): v for k, v in entity.items()}
    return Alert(
        "a", T0 + timedelta(minutes=minutes), "rule.x", "X", "scanner", "low", 10, entity, (), "m"
    )


def _csv(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_per_label_detected_benign_and_unlabelled(tmp_path: Path) -> None:
    labels = read_labels(
        _csv(
            tmp_path,
            (
                "entity,label,start,end\n"
                "203.0.113.1,credential_stuffing,,\n"
                "203.0.113.2,credential_stuffing,2025-06-03T08:00:00Z,2025-06-03T08:10:00Z\n"
                "203.0.113.3,scanner,,\n"
                "mallory@x.example,account_takeover,,\n"
                "192.0.2.10,benign,,\n"
                "192.0.2.11,benign,,\n"
            ),
        )
    )
    alerts = [
        _alert(1, source_ip="203.0.113.1"),
        _alert(30, source_ip="203.0.113.2"),  # outside its span: not detected
        _alert(2, user_name="mallory@x.example", source_ip="198.51.100.9"),  # about mallory
        _alert(3, source_ip="192.0.2.10"),  # a benign entity alerted
    ]
    f = score_labels(labels, alerts)
    assert f["labels"]["credential_stuffing"] == {
        "detected": 1,
        "total": 2,
        "share": 0.5,
        "rules": ["rule.x"],
    }
    assert f["labels"]["scanner"]["detected"] == 0
    assert f["labels"]["account_takeover"]["detected"] == 1
    assert f["labels"]["benign"] == {"detected": 1, "total": 2, "share": 0.5, "rules": ["rule.x"]}
    assert f["benign_alerted"] == 1 and f["benign_alerted_examples"] == ["192.0.2.10"]
    # The alert on mallory also names an address nobody labelled; it is still about mallory.
    assert f["unlabelled_alerted"] == 0
    assert f["recall"] == 0.5  # 2 of the 4 attack entities


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ip,kind\n1.2.3.4,x\n", "must name the columns entity and label"),
        ("entity,label\n,scanner\n", ":2: entity and label must not be empty"),
        ("entity,label,start\n1.2.3.4,x,yesterday\n", "not an RFC 3339 time"),
        (
            "entity,label,start,end\n1.2.3.4,x,2025-01-02T00:00:00Z,2025-01-01T00:00:00Z\n",
            "end is before start",
        ),
        ("entity,label\n", "no labelled entities"),
        ("entity,label\n1.2.3.4,scanner,a note, with a comma\n", "4 values for 2 columns"),
        ("", "is empty"),
    ],
)
def test_bad_labels_are_clear_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_labels(_csv(tmp_path, text))


def test_labels_csv_leniency(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "\ufeffEntity,Label,End,Note\n"
        "192.0.2.10,Benign,,office\n"
        "\n"
        "203.0.113.9,scanner,2025-06-03,a date ends with its day\n"
    )
    labels = read_labels(path)
    assert [lab.label for lab in labels] == ["benign", "scanner"]
    f = score_labels(
        labels, [_alert(600, source_ip="203.0.113.9"), _alert(1, source_ip="192.0.2.10")]
    )
    assert f["labels"]["scanner"]["detected"] == 1  # 18:00 on the end date still counts
    assert f["benign_alerted"] == 1


def test_latin1_labels_are_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes("entity,label\nm\xfcller@x.example,ato\n".encode("latin-1"))
    with pytest.raises(ConfigError, match="UTF-8 CSV expected"):
        read_labels(path)


def test_unlabelled_counts_alerts_about_no_labelled_entity(tmp_path: Path) -> None:
    labels = read_labels(_csv(tmp_path, "entity,label\n203.0.113.1,scanner\n"))
    alerts = [
        _alert(1, source_ip="203.0.113.1", host_name="web-1"),  # labelled; the host is not news
        _alert(2, source_ip="198.51.100.4", host_name="web-1"),  # nobody's: its address counts
    ]
    f = score_labels(labels, alerts)
    assert f["unlabelled_alerted"] == 1 and f["unlabelled_alerted_examples"] == ["198.51.100.4"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "evaluate", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_evaluate_truth_on_an_access_log(tmp_path: Path) -> None:
    lines = [
        f'203.0.113.5 - - [03/Jun/2025:08:00:{s:02d} +0000] "GET /search?q=1%27%20OR%20%271%27=%271'
        f' HTTP/1.1" 200 512 "-" "Mozilla/5.0"'
        for s in range(3)
    ] + [
        f'192.0.2.20 - - [03/Jun/2025:08:01:{s:02d} +0000] "GET /products/{s} HTTP/1.1" 200 9000'
        ' "-" "Mozilla/5.0"'
        for s in range(5)
    ]
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    labels = _csv(tmp_path, "entity,label\n203.0.113.5,web_attack\n192.0.2.20,benign\n")
    out = tmp_path / "f.json"
    run = _cli("truth", str(log), "--truth", str(labels), "--json", str(out))
    assert run.returncode == 0, run.stderr
    f = json.loads(out.read_text())
    assert f["labels"]["web_attack"]["detected"] == 1
    assert f["labels"]["benign"]["detected"] == 0
    assert f["benign_alerted"] == 0 and f["unlabelled_alerted"] == 0
    assert "web.sqli_probe" in f["labels"]["web_attack"]["rules"]
    floor = _cli("truth", str(log), "--truth", str(labels), "--require", "benign_alerted<=-1")
    assert floor.returncode == 3 and "above the ceiling" in floor.stderr
    missing = _cli("truth", str(log), "--truth", str(tmp_path / "none.csv"))
    assert missing.returncode == 2 and "no such labels file" in missing.stderr


@pytest.mark.slow
def test_evaluate_real_reports_every_shared_log(datasets: Path, tmp_path: Path) -> None:
    out = tmp_path / "real.json"
    run = _cli("real", "--datasets", str(datasets), "--json", str(out))
    assert run.returncode == 0, run.stderr
    f = json.loads(out.read_text())
    hackers = f["files"]["access-logs/hackers-access.log"]
    assert hackers["lines"] == 3456 and hackers["addresses"] == 520
    assert hackers["labels"]["bot"]["total"] == 520
    elastic = f["files"]["access-logs/elastic_apache_logs.log"]
    assert elastic["addresses"] == 1753 and elastic["rejected"] == 1  # the truncated line
    honeynet = f["files"]["access-logs/honeynet_redhat71_httpd_access.log.gz"]
    assert honeynet["lines"] == 38487 and honeynet["alerts"] > 0
    assert "loghub/OpenSSH/OpenSSH_2k.log" in f["files"]
    assert "real logs" in run.stdout and "alerts per rule" in run.stdout
