"""Feed parsers on the real feed snapshots and on hand-written samples of the other formats."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopwatch.enrich.feeds import FORMATS, parse_feed
from shopwatch.enrich.feeds.misp import manifest_events, parse_misp_event
from shopwatch.enrich.feeds.plain import parse_plain
from shopwatch.enrich.feeds.stix import parse_pattern, parse_stix
from shopwatch.enrich.schedule import FeedConfig

INTEL = "threat-intel"


def _read(datasets: Path, name: str) -> str:
    return (datasets / INTEL / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "fmt", "entries", "family"),
    [
        ("spamhaus_drop.txt", "spamhaus", 1385, "ipv4-addr"),
        ("spamhaus_dropv6.txt", "spamhaus", 78, "ipv6-addr"),
        ("spamhaus_edrop.txt", "spamhaus", 289, "ipv4-addr"),
        ("firehol/firehol_level1.netset", "netset", 4631, "ipv4-addr"),
        ("firehol/spamhaus_drop.netset", "netset", 1599, "ipv4-addr"),
        ("firehol/et_compromised.ipset", "ipset", 539, "ipv4-addr"),
        ("firehol/tor_exits.ipset", "ipset", 1370, "ipv4-addr"),
        ("firehol/dshield.netset", "netset", 20, "ipv4-addr"),
        ("firehol/blocklist_de_ssh.ipset", "ipset", 5206, "ipv4-addr"),
        ("firehol/stopforumspam_7d.ipset", "ipset", 14686, "ipv4-addr"),
    ],
)
def test_plain_lists_give_every_entry(
    datasets: Path, name: str, fmt: str, entries: int, family: str
) -> None:
    content = parse_feed(fmt, _read(datasets, name))
    assert len(content.indicators) == entries
    assert not content.rejects, content.rejects[:3]
    assert {i.type for i in content.indicators} == {family}


def test_spamhaus_keeps_the_sbl_record(datasets: Path) -> None:
    content = parse_feed("spamhaus", _read(datasets, "spamhaus_drop.txt"))
    first = content.indicators[0]
    assert (first.value, first.note) == ("1.10.16.0/20", "SBL256894")
    v6 = parse_feed("spamhaus", _read(datasets, "spamhaus_dropv6.txt")).indicators[0]
    assert (v6.value, v6.note) == ("2001:678:6c4::/48", "SBL626637")


def test_firehol_single_addresses_become_host_networks(datasets: Path) -> None:
    content = parse_feed("ipset", _read(datasets, "firehol/tor_exits.ipset"))
    assert content.indicators[0].value == "2.56.10.36/32"


def test_malformed_lines_are_counted_not_fatal(datasets: Path) -> None:
    text = _read(datasets, "spamhaus_edrop.txt").splitlines()
    text[6] = "5.42.92.0/33 ; SBL625300"  # a prefix too long
    text.insert(9, "<html><body>502 Bad Gateway</body></html>")
    text.insert(12, "999.1.2.3")
    content = parse_feed("spamhaus", "\n".join(text))
    assert len(content.indicators) == 289 - 1
    assert [(r.line_no, r.reason) for r in content.rejects] == [
        (7, "bad_value"),
        (10, "bad_value"),
        (13, "bad_value"),
    ]
    assert content.rejects[1].raw.startswith("<html>")


def test_feodo_csv_rows_and_trailer(datasets: Path) -> None:
    text = _read(datasets, "feodotracker_ipblocklist.csv")
    content = parse_feed("abusech_csv", text)
    # the trailer says "# END 28 entries" and the file holds 28 data rows
    assert len(content.indicators) == 28
    assert not content.rejects
    first = content.indicators[0]
    assert (first.value, first.note) == ("192.9.135.73/32", "Pikabot")
    assert first.seen == datetime(2024, 4, 1, tzinfo=UTC)  # last_online


def test_feodo_csv_broken_rows(datasets: Path) -> None:
    lines = _read(datasets, "feodotracker_ipblocklist.csv").splitlines()
    lines.insert(10, '"2024-02-08 19:20:49","85.239.243.155","5000"')  # too few columns
    lines.insert(
        11, '"2024-02-08 19:20:49","85.239.243.999","5000","offline","2024-03-11","Pikabot"'
    )
    content = parse_feed("abusech_csv", "\n".join(lines))
    assert len(content.indicators) == 28
    assert [(r.line_no, r.reason) for r in content.rejects] == [(11, "bad_row"), (12, "bad_value")]


def test_urlhaus_csv_with_commented_header(fixtures_dir: Path) -> None:
    content = parse_feed("abusech_csv", (fixtures_dir / "intel" / "urlhaus.csv").read_text())
    assert [(i.type, i.value) for i in content.indicators] == [
        ("url", "http://117.215.44.92:41622/Mozi.m"),
        ("url", "https://jquery-cdn-static.example/js/jquery.min.js"),
        ("url", "http://update-flash-player.example/install.exe"),
    ]
    assert content.indicators[2].note == "malware_download"
    assert content.indicators[2].seen == datetime(2026, 3, 13, 22, 10, tzinfo=UTC)
    assert [(r.line_no, r.reason) for r in content.rejects] == [(13, "bad_value"), (14, "bad_row")]


def test_threatfox_style_rows() -> None:
    text = (
        '# "first_seen_utc","ioc_id","ioc_value","ioc_type","threat_type","malware_printable",'
        '"last_seen_utc","confidence_level"\n'
        '"2026-03-14 08:00:00","1","45.95.169.104:443","ip:port","botnet_cc","Cobalt Strike","","75"\n'
        '"2026-03-14 08:00:01","2","skimmer-gate.example","domain","payload_delivery","Magecart","","100"\n'
        '"2026-03-14 08:00:02","3","44d88612fea8a8f36de82e1278abb02f","md5_hash","payload","EICAR","","50"\n'
    )
    content = parse_feed("abusech_csv", text)
    assert [(i.type, i.value, i.confidence) for i in content.indicators] == [
        ("ipv4-addr", "45.95.169.104/32", 75),
        ("domain-name", "skimmer-gate.example", 100),
        ("file", "44d88612fea8a8f36de82e1278abb02f", 50),
    ]


def test_tor_exit_addresses(fixtures_dir: Path) -> None:
    content = parse_feed(
        "tor_exit_addresses", (fixtures_dir / "intel" / "exit-addresses").read_text()
    )
    assert [i.value for i in content.indicators] == [
        "162.247.74.201/32",
        "185.220.101.7/32",
        "2a0b:f4c2:2::7/128",
        "199.249.230.87/32",
    ]
    assert content.indicators[0].note == "0011BD2485AD45D984EC4159C88FC066E5E3300E"
    assert content.indicators[1].seen == datetime(2026, 8, 21, 23, 11, 7, tzinfo=UTC)
    assert [(r.line_no, r.reason) for r in content.rejects] == [(14, "bad_row"), (15, "bad_value")]


def test_stix_bundle(fixtures_dir: Path) -> None:
    content = parse_stix((fixtures_dir / "intel" / "stix_bundle.json").read_text())
    got = {(i.type, i.value): i for i in content.indicators}
    assert set(got) == {
        ("ipv4-addr", "45.134.26.10/32"),
        ("ipv4-addr", "193.32.162.0/24"),
        ("ipv6-addr", "2a0d:5600:24::/48"),
        ("domain-name", "cdn-skimmer.example"),
        ("url", "https://pay-check.example/gate.php"),
        ("file", "aec070645fe53ee3b3763059376134f058cc337247c978add178b6ccdfb0019f"),
        ("ipv4-addr", "185.180.143.141/32"),
    }
    bot = got[("ipv4-addr", "45.134.26.10/32")]
    assert bot.confidence == 90
    assert bot.expires == datetime(2026, 9, 1, tzinfo=UTC)
    assert bot.note == "Credential stuffing botnet node"
    assert got[("domain-name", "cdn-skimmer.example")].confidence is None
    # AND, REPEATS/WITHIN and a snort pattern are reported; the revoked one is skipped quietly
    assert [r.reason for r in content.rejects] == ["unsupported_pattern"] * 3
    assert "AND network-traffic:dst_port" in content.rejects[0].raw
    assert ("ipv4-addr", "8.8.8.8/32") not in got


@pytest.mark.parametrize(
    "pattern",
    [
        "[ipv4-addr:value LIKE '1.2.%']",
        "[ipv4-addr:value != '1.2.3.4']",
        "[email-addr:value = 'a@example.com']",
        "[ipv4-addr:value = '1.2.3.4'] FOLLOWEDBY [ipv4-addr:value = '5.6.7.8']",
        "[domain-name:value MATCHES '^evil']",
        "[ipv4-addr:value = 'not-an-ip']",
        "[url:value = 'http://x.example/'",
        "",
        "garbage",
    ],
)
def test_unsupported_stix_patterns_are_none(pattern: str) -> None:
    assert parse_pattern(pattern) is None


def test_stix_bad_json_is_a_reject() -> None:
    content = parse_stix('{"type": "bundle", "objects": [')
    assert not content.indicators and [r.reason for r in content.rejects] == ["bad_json"]


def test_misp_single_event(fixtures_dir: Path) -> None:
    content = parse_misp_event((fixtures_dir / "intel" / "misp_event.json").read_text())
    assert [(i.type, i.value) for i in content.indicators] == [
        ("ipv4-addr", "45.141.84.120/32"),
        ("ipv4-addr", "91.92.243.17/32"),
        ("domain-name", "checkout-verify.example"),
        ("domain-name", "api.cardcheck.example"),
        ("url", "https://checkout-verify.example/v1/bin"),
        ("file", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
        ("domain-name", "bin-lookup.example"),
        ("ipv6-addr", "2a0d:5600:24:a::3/128"),
    ]
    assert content.indicators[0].note == "Card-testing botnet against e-commerce checkouts"
    assert [(r.line_no, r.reason) for r in content.rejects] == [(9, "bad_value")]
    everything = parse_misp_event(
        (fixtures_dir / "intel" / "misp_event.json").read_text(), ids_only=False
    )
    assert ("ipv4-addr", "66.249.66.1/32") in {(i.type, i.value) for i in everything.indicators}


def test_misp_manifest_lists_events(fixtures_dir: Path) -> None:
    text = (fixtures_dir / "intel" / "misp_feed" / "manifest.json").read_text()
    assert manifest_events(text) == [
        "2d7a0c43-9f1b-4f7e-8c55-0b6f1e9a3c11",
        "8b4e6f21-0c3d-4a5b-9e8f-7a6b5c4d3e2f",
    ]
    assert manifest_events("[1, 2]") == []


def test_plain_list_of_mixed_values() -> None:
    content = parse_plain(
        "# mixed\nevil.example\nhttp://bad.example/x.php\n203.0.113.0/24\n"
        "44d88612fea8a8f36de82e1278abb02f\n0.0.0.0 ads.tracker.example\n-- nonsense --\n"
    )
    assert [i.type for i in content.indicators] == [
        "domain-name",
        "url",
        "ipv4-addr",
        "file",
        "ipv4-addr",
    ]
    assert [r.line_no for r in content.rejects] == [7]


def test_every_config_format_has_a_parser() -> None:
    from typing import get_args

    fmt_field = FeedConfig.model_fields["format"].annotation
    assert set(get_args(fmt_field)) == set(FORMATS)
