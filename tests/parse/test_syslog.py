"""Syslog parser: auth semantics against loghub's ground-truth templates, RFC 5424, years, zones."""

from __future__ import annotations

import csv
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch.parse import ParseContext
from shopwatch.parse.syslog import parse_syslog, resolve_year
from tests.parse.helpers import frame, parse_all, row

REF = datetime(2025, 3, 1, tzinfo=UTC)


def _structured(path: Path) -> dict[int, dict[str, str]]:
    with open(f"{path}_structured.csv", newline="", encoding="utf-8") as f:
        return {int(r["LineId"]): r for r in csv.DictReader(f)}


def _by_line(batch: pl.DataFrame) -> dict[int, dict[str, Any]]:
    return {int(r["event.id"].rsplit(":", 1)[1]): r for r in batch.iter_rows(named=True)}


@pytest.fixture(scope="module")
def openssh(datasets: Path) -> tuple[dict[int, dict[str, Any]], dict[int, dict[str, str]]]:
    path = datasets / "loghub" / "OpenSSH" / "OpenSSH_2k.log"
    parsed = parse_all(path, "syslog", year=2024)
    assert (parsed.batch.height, parsed.rejects.height) == (2_000, 0)
    return _by_line(parsed.batch), _structured(path)


def test_openssh_failed_passwords_match_ground_truth(openssh: Any) -> None:
    events, truth = openssh
    failed = re.compile(r"Failed password for (?:invalid user )?(.*?) from (\S+) port (\d+)")
    lines = [n for n, t in truth.items() if t["EventId"] in {"E9", "E10", "E14"}]
    assert len(lines) > 300
    for n in lines:
        m = failed.search(truth[n]["Content"])
        assert m is not None
        e = events[n]
        assert (e["event.dataset"], e["event.action"], e["event.outcome"]) == (
            "system.auth",
            "ssh_login",
            "failure",
        )
        assert (e["user.name"], e["source.ip"], e["source.port"]) == (m[1], m[2], int(m[3]))
        expected = "invalid_user" if truth[n]["EventId"] == "E10" else "bad_password"
        assert e["event.reason"] == expected


def test_openssh_every_template(openssh: Any) -> None:
    events, truth = openssh
    expected = {
        "E1": ("ssh_login", "success", "password"),
        "E8": ("ssh_login", "failure", "invalid_user"),
        "E13": ("ssh_login", "failure", "invalid_user"),
        "E27": ("ssh_break_in_attempt", None, None),
        "E2": ("ssh_disconnect", None, None),
        "E24": ("ssh_disconnect", None, None),
        "E25": ("ssh_disconnect", None, None),
        "E26": ("ssh_disconnect", None, None),
        "E6": ("ssh_disconnect", None, None),
        "E7": ("ssh_disconnect", None, None),
        "E4": ("ssh_disconnect", "failure", "too_many_auth_failures"),
        "E5": ("ssh_disconnect", "failure", "too_many_auth_failures"),
        "E19": ("auth_failure", "failure", None),
        "E20": ("auth_failure", "failure", None),
        "E16": ("auth_failure", "failure", None),
        "E21": (None, None, None),
        "E3": (None, None, None),
    }
    seen = set()
    for n, t in truth.items():
        e = events[n]
        assert (e["process.name"], e["host.name"]) == ("sshd", t["Component"])
        assert e["process.pid"] == int(t["Pid"])
        assert e["message"].rstrip() == t["Content"]
        assert e["@timestamp"].strftime("%b %-d %H:%M:%S") == f"{t['Date']} {t['Day']} {t['Time']}"
        if t["EventId"] in expected:
            seen.add(t["EventId"])
            got = (e["event.action"], e["event.outcome"], e["event.reason"])
            assert got == expected[t["EventId"]], (n, t["Content"])
        if t["EventId"] in {"E1", "E13", "E27", "E2", "E24"}:
            ip = re.search(r"\d+\.\d+\.\d+\.\d+", t["Content"])
            assert ip is not None and e["source.ip"] == ip[0]
        if t["EventId"] == "E27":
            assert e["source.domain"] == t["Content"].split(" for ", 1)[1].split(" ", 1)[0]
        if t["EventId"] == "E13":
            assert e["user.name"] == re.match(r"Invalid user (.*?) from ", t["Content"])[1]  # type: ignore[index]
    assert seen == set(expected)


def test_linux_pam_lines(datasets: Path) -> None:
    path = datasets / "loghub" / "Linux" / "Linux_2k.log"
    parsed = parse_all(path, "syslog", year=2005)
    assert (parsed.batch.height, parsed.rejects.height) == (2_000, 0)
    events, truth = _by_line(parsed.batch), _structured(path)
    rhost = re.compile(r"rhost=(\S+)(?:\s+user=(\S+))?")
    pam_failures = [
        n
        for n, t in truth.items()
        if t["Component"] == "sshd(pam_unix)" and t["Content"].startswith("authentication failure")
    ]
    assert len(pam_failures) > 450
    for n in pam_failures:
        e = events[n]
        m = rhost.search(truth[n]["Content"])
        assert m is not None
        assert (e["event.action"], e["event.outcome"]) == ("ssh_login", "failure")
        assert e["event.reason"] == ("bad_password" if m[2] else "invalid_user")
        assert e["user.name"] == m[2]
        if re.fullmatch(r"[\d.]+", m[1]):
            assert (e["source.ip"], e["source.domain"]) == (m[1], None)
        else:
            assert (e["source.ip"], e["source.domain"]) == (None, m[1])
        assert e["log.syslog.appname"] == "sshd(pam_unix)" and e["process.name"] == "sshd"
    su_open = [
        n for n, t in truth.items() if t["Component"] == "su(pam_unix)" and t["EventId"] == "E102"
    ]
    assert su_open and all(events[n]["event.action"] == "su" for n in su_open)
    assert all(
        events[n]["event.dataset"] == "system.syslog"
        for n, t in truth.items()
        if t["Component"] == "ftpd"
    )
    gdm = [e for e in events.values() if e["process.name"] == "gdm" and e["event.action"]]
    assert [e["event.action"] for e in gdm] == ["auth_failure"]
    root_login = events[899]
    assert root_login["log.syslog.appname"] == "-- root" and root_login["process.pid"] == 2421
    assert events[1]["@timestamp"] == datetime(2005, 6, 14, 15, 16, 1, tzinfo=UTC)


def test_auth_fixture(fixtures_dir: Path) -> None:
    parsed = parse_all(fixtures_dir / "syslog" / "auth.log", "syslog", year=2024)
    assert (parsed.batch.height, parsed.rejects.height) == (20, 0)

    def sem(n: int) -> tuple[Any, ...]:
        e = row(parsed, n)
        return tuple(
            e.get(k)
            for k in (
                "event.action",
                "event.outcome",
                "event.reason",
                "user.name",
                "source.ip",
                "source.port",
            )
        )

    assert sem(1) == ("ssh_login", "failure", "invalid_user", "oracle", "198.51.100.77", 40122)
    assert sem(3) == ("ssh_login", "failure", "bad_password", "root", "198.51.100.77", 40130)
    assert sem(4) == ("auth_failure", "failure", None, "root", "198.51.100.77", None)
    assert sem(5) == ("ssh_disconnect", None, None, "root", "198.51.100.77", 40130)
    assert sem(6) == ("ssh_login", "success", "publickey", "deploy", "192.0.2.15", 51012)
    assert sem(8) == ("sudo", "success", None, "deploy", None, None)
    assert sem(9) == ("sudo", "failure", "not_in_sudoers", "mallory", None, None)
    assert sem(10) == ("su", "success", None, "deploy", None, None)
    assert sem(11) == ("su", "failure", "bad_password", "mallory", None, None)
    assert sem(12)[:2] == ("auth_failure", "failure")
    assert sem(13) == ("ssh_disconnect", None, None, None, "203.0.113.50", 33210)
    assert row(parsed, 14)["source.domain"] == "scan.example.net"
    assert sem(14)[0] == "ssh_break_in_attempt"
    assert row(parsed, 15)["event.dataset"] == "system.auth"  # pam_unix session from cron
    assert row(parsed, 16)["event.dataset"] == "system.syslog"
    pri = row(parsed, 17)
    assert (pri["log.syslog.priority"], pri["source.ip"]) == (38, "2001:db8::7")
    new = row(parsed, 18)
    assert new["@timestamp"] == datetime(2024, 3, 12, 8, 17, 0, 250000, tzinfo=UTC)
    assert (new["host.name"], new["process.pid"], new["log.syslog.priority"]) == ("web-2", 4700, 86)
    assert (new["event.action"], new["event.reason"], new["user.name"]) == (
        "ssh_login",
        "invalid_user",
        "test",
    )
    rfc = row(parsed, 19)
    assert rfc["message"] == "An application event log entry..."  # BOM stripped, SD dropped
    assert (rfc["log.syslog.appname"], rfc["host.name"]) == ("evntslog", "mymachine.example.com")
    assert "process.pid" not in rfc
    assert row(parsed, 20)["@timestamp"] == datetime(2024, 3, 12, 8, 18, 0, 123456, tzinfo=UTC)


def test_year_from_reference_and_override() -> None:
    lines = [
        "Dec 31 23:59:58 h sshd[1]: Connection closed by 1.2.3.4",
        "Jan  1 00:00:02 h sshd[1]: Connection closed by 1.2.3.4",
    ]
    ref = ParseContext(source="auth.log", reference=datetime(2025, 1, 1, 0, 5, tzinfo=UTC))
    got = parse_syslog(frame(lines), ref).batch["@timestamp"].to_list()
    assert got == [
        datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC),
        datetime(2025, 1, 1, 0, 0, 2, tzinfo=UTC),
    ]
    fixed = (
        parse_syslog(frame(lines), ParseContext(year=2019)).batch["@timestamp"].dt.year().to_list()
    )
    assert fixed == [2019, 2019]
    assert resolve_year(12, 31, datetime(2025, 1, 1, tzinfo=UTC)) == 2024
    assert resolve_year(6, 1, datetime(2025, 7, 1, tzinfo=UTC)) == 2025
    assert resolve_year(7, 2, datetime(2025, 7, 1, 12, tzinfo=UTC)) == 2025  # within a day of slack


def test_timezone() -> None:
    ctx = ParseContext(year=2024, timezone="Europe/Berlin")
    lines = ["Jul  1 12:00:00 h app: summer", "Jan  1 12:00:00 h app: winter"]
    got = parse_syslog(frame(lines), ctx).batch["@timestamp"].to_list()
    assert got == [datetime(2024, 7, 1, 10, tzinfo=UTC), datetime(2024, 1, 1, 11, tzinfo=UTC)]


def test_rejects() -> None:
    lines = [
        "",
        "not a syslog line",
        "Foo 12 10:00:00 h app: x",
        "Feb 30 10:00:00 h app: no such day",
        "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    ]
    parsed = parse_syslog(frame(lines), ParseContext(year=2024))
    assert parsed.rejects.select("line_no", "reason").rows() == [
        (1, "empty"),
        (2, "no_match"),
        (3, "no_match"),
        (4, "bad_timestamp"),
    ]
    assert row(parsed, 5)["log.syslog.priority"] == 34


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(), max_size=12))
def test_any_text_keeps_the_invariant(lines: list[str]) -> None:
    lines = [s.replace("\n", " ").replace("\r", " ") for s in lines]
    parsed = parse_syslog(frame(lines), ParseContext(year=2024))
    assert parsed.batch.height + parsed.rejects.height == len(lines)


_name = st.from_regex(r"[a-z][a-z0-9_.-]{0,15}", fullmatch=True)


@st.composite
def _auth_records(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "ts": draw(
            st.datetimes(
                min_value=datetime(2024, 1, 1), max_value=datetime(2024, 12, 31, 23, 59, 59)
            )
        ).replace(microsecond=0),
        "host": draw(_name),
        "pid": draw(st.integers(1, 4_000_000)),
        "kind": draw(st.sampled_from(["failed", "invalid", "accepted"])),
        "user": draw(_name),
        "ip": str(draw(st.ip_addresses())),
        "port": draw(st.integers(1, 65535)),
    }


def _render(r: dict[str, Any]) -> str:
    head = f"{r['ts'].strftime('%b')} {r['ts'].day:2d} {r['ts'].strftime('%H:%M:%S')} {r['host']} sshd[{r['pid']}]: "
    if r["kind"] == "failed":
        return head + f"Failed password for {r['user']} from {r['ip']} port {r['port']} ssh2"
    if r["kind"] == "invalid":
        return head + f"Invalid user {r['user']} from {r['ip']} port {r['port']}"
    return (
        head
        + f"Accepted publickey for {r['user']} from {r['ip']} port {r['port']} ssh2: RSA SHA256:x"
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_auth_records(), min_size=1, max_size=8))
def test_rendered_auth_lines_parse_back(records: list[dict[str, Any]]) -> None:
    parsed = parse_syslog(frame(_render(r) for r in records), ParseContext(year=2024))
    assert parsed.rejects.height == 0
    for got, r in zip(parsed.batch.iter_rows(named=True), records, strict=True):
        assert got["@timestamp"] == r["ts"].replace(tzinfo=UTC)
        assert (got["host.name"], got["process.pid"], got["process.name"]) == (
            r["host"],
            r["pid"],
            "sshd",
        )
        assert (got["user.name"], got["source.ip"], got["source.port"]) == (
            r["user"],
            r["ip"],
            r["port"],
        )
        assert got["event.action"] == "ssh_login"
        assert got["event.outcome"] == ("success" if r["kind"] == "accepted" else "failure")
