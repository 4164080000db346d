"""VPC flow log parser: header, NODATA/SKIPDATA, protocols, round trip."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch.parse import ParseContext
from shopwatch.parse.vpcflow import HEADER, parse_vpcflow
from tests.parse.helpers import frame, parse_all, row

CTX = ParseContext(source="flows.log")


def test_fixture(fixtures_dir: Path) -> None:
    parsed = parse_all(fixtures_dir / "vpcflow" / "flows.log", "vpcflow")
    assert (parsed.batch.height, parsed.rejects.height, parsed.skipped) == (6, 2, 1)
    assert parsed.rejects.select("line_no", "reason").rows() == [(4, "no_data"), (5, "no_data")]
    ssh = row(parsed, 2)
    assert ssh["@timestamp"] == datetime(2014, 12, 14, 4, 6, 50, tzinfo=UTC)
    assert ssh["event.duration"] == 60 * 10**9
    assert (
        ssh["source.ip"],
        ssh["source.port"],
        ssh["destination.ip"],
        ssh["destination.port"],
    ) == ("172.31.16.139", 20641, "172.31.16.21", 22)
    assert (
        ssh["network.transport"],
        ssh["network.iana_number"],
        ssh["network.packets"],
        ssh["network.bytes"],
    ) == ("tcp", 6, 20, 4249)
    assert (ssh["cloud.account.id"], ssh["observer.ingress.interface.name"]) == (
        "123456789010",
        "eni-1235b8ca123456789",
    )
    assert (ssh["event.dataset"], ssh["event.action"], ssh["event.outcome"]) == (
        "network.flow",
        "accept",
        "success",
    )
    rdp = row(parsed, 3)
    assert (rdp["event.action"], rdp["event.outcome"]) == ("reject", "failure")
    assert row(parsed, 6)["network.transport"] == "icmp"
    assert row(parsed, 8)["network.transport"] == "udp"
    gre = row(parsed, 9)
    assert gre["network.iana_number"] == 47 and "network.transport" not in gre


def test_without_header_and_malformed() -> None:
    lines = [
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1600000000 1600000005 ACCEPT OK",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 1600000000 1600000005 ACCEPT BROKEN",
        "2 123456789010 eni-1 10.0.0.1 10.0.0.2 443 51000 6 10 840 soon 1600000005 ACCEPT OK",
        "",
    ]
    parsed = parse_vpcflow(frame(lines), CTX)
    assert parsed.skipped == 0
    assert parsed.batch.height == 1
    assert parsed.rejects.select("line_no", "reason").rows() == [
        (2, "no_match"),
        (3, "no_match"),
        (4, "bad_timestamp"),
        (5, "empty"),
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.text(), st.just(HEADER)), max_size=12))
def test_any_text_keeps_the_invariant(lines: list[str]) -> None:
    lines = [s.replace("\n", " ").replace("\r", " ") for s in lines]
    parsed = parse_vpcflow(frame(lines), CTX)
    assert parsed.batch.height + parsed.rejects.height + parsed.skipped == len(lines)


_flows = st.fixed_dictionaries(
    {
        "account": st.from_regex(r"\d{12}", fullmatch=True),
        "eni": st.from_regex(r"eni-[0-9a-f]{8,17}", fullmatch=True),
        "src": st.ip_addresses().map(str),
        "dst": st.ip_addresses().map(str),
        "sport": st.integers(0, 65535),
        "dport": st.integers(0, 65535),
        "proto": st.sampled_from([1, 6, 17, 47, 58]),
        "packets": st.integers(0, 10**9),
        "bytes": st.integers(0, 10**12),
        "start": st.integers(10**9, 2 * 10**9),
        "length": st.integers(0, 3600),
        "action": st.sampled_from(["ACCEPT", "REJECT"]),
    }
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_flows, min_size=1, max_size=8), st.booleans())
def test_rendered_flows_parse_back(flows: list[dict[str, object]], header: bool) -> None:
    lines = [HEADER] if header else []
    lines += [
        f"2 {f['account']} {f['eni']} {f['src']} {f['dst']} {f['sport']} {f['dport']} {f['proto']} {f['packets']} {f['bytes']} {f['start']} {int(f['start']) + int(f['length'])} {f['action']} OK"  # type: ignore[call-overload]
        for f in flows
    ]
    parsed = parse_vpcflow(frame(lines), CTX)
    assert (parsed.rejects.height, parsed.skipped) == (0, int(header))
    for got, f in zip(parsed.batch.iter_rows(named=True), flows, strict=True):
        assert got["@timestamp"] == datetime.fromtimestamp(int(f["start"]), UTC)  # type: ignore[call-overload]
        assert got["event.duration"] == int(f["length"]) * 10**9  # type: ignore[call-overload]
        assert (
            got["source.ip"],
            got["destination.ip"],
            got["source.port"],
            got["destination.port"],
        ) == (f["src"], f["dst"], f["sport"], f["dport"])
        assert (got["network.iana_number"], got["network.packets"], got["network.bytes"]) == (
            f["proto"],
            f["packets"],
            f["bytes"],
        )
        assert got["event.action"] == str(f["action"]).lower()
