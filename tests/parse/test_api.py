"""The parse stage's public API: formats, sniffing, parse_file/parse_frame, unknown formats."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopwatch.errors import ConfigError
from shopwatch.parse import FORMATS, ParseContext, parse_file, parse_frame, sniff_format
from shopwatch.parse.read import iter_chunks
from tests.parse.helpers import frame, parse_all


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("access-logs/elastic_apache_logs.log", "nginx"),
        ("access-logs/hackers-access.log", "nginx"),
        ("access-logs/honeynet_redhat71_httpd_access.log.gz", "nginx"),
        ("loghub/OpenSSH/OpenSSH_2k.log", "syslog"),
        ("loghub/Linux/Linux_2k.log", "syslog"),
        ("loghub/Apache/Apache_2k.log", None),  # an error log: no format of ours
        ("loghub/OpenSSH/OpenSSH_2k.log_structured.csv", None),
        ("network-flows/KDDTest+_a.txt.gz", None),
    ],
)
def test_sniff_datasets(datasets: Path, relative: str, expected: str | None) -> None:
    sample = next(iter_chunks(datasets / relative, 50))["line"].to_list()
    assert sniff_format(sample) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("nginx/access_extras.log", "nginx"),
        ("ecs/events.jsonl", "ecs"),
        ("syslog/auth.log", "syslog"),
        ("vpcflow/flows.log", "vpcflow"),
    ],
)
def test_sniff_fixtures(fixtures_dir: Path, name: str, expected: str) -> None:
    assert sniff_format((fixtures_dir / name).read_text().splitlines()) == expected


def test_registry() -> None:
    assert {"nginx", "apache", "ecs", "syslog", "vpcflow"} <= set(FORMATS)
    assert FORMATS["apache"].parse is FORMATS["nginx"].parse
    assert sniff_format([]) is None and sniff_format(["", "  "]) is None


def test_unknown_format_name_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"known formats: .*nginx"):
        next(parse_file(tmp_path / "never-read.log", "iis"))
    with pytest.raises(ConfigError, match="'iis'"):
        parse_frame(frame(["x"]), "iis", ParseContext())


def test_unsniffable_file_is_all_rejects(datasets: Path) -> None:
    parsed = parse_all(datasets / "loghub" / "Apache" / "Apache_2k.log", chunk_lines=700)
    assert parsed.batch.height == 0
    assert parsed.rejects.height == 2_000
    assert set(parsed.rejects["reason"]) == {"unknown_format"}
    assert parsed.rejects["line_no"].to_list() == list(range(1, 2_001))


def test_parse_frame_auto_sniffs_the_frame() -> None:
    lines = ['1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326'] * 3
    assert parse_frame(frame(lines), "auto", ParseContext()).batch.height == 3
    odd = parse_frame(frame(["hello", "world"]), "auto", ParseContext())
    assert set(odd.rejects["reason"]) == {"unknown_format"}


def test_parse_file_year_from_mtime(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text(
        "Dec 31 23:59:00 h sshd[1]: Invalid user a from 1.2.3.4\n"
        "Jan  1 00:01:00 h sshd[1]: Invalid user b from 1.2.3.4\n"
    )
    stamp = datetime(2025, 1, 1, 0, 2, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    parsed = parse_all(path)
    assert parsed.batch["@timestamp"].dt.year().to_list() == [2024, 2025]
    fixed = parse_all(path, "syslog", year=2010).batch["@timestamp"].dt.year().to_list()
    assert fixed == [2010, 2010]
    assert parsed.batch["event.id"].to_list() == ["auth.log:1", "auth.log:2"]
