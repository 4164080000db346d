"""The indicator index and the intel enricher: nested networks, IPv6, expiry, domains, URLs."""

from __future__ import annotations

import ipaddress
import itertools
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from shopwatch.contract import EVENT_SCHEMA, conform
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.feeds import Indicator, parse_feed
from shopwatch.enrich.feeds.misp import parse_misp_event
from shopwatch.enrich.feeds.stix import parse_stix
from shopwatch.enrich.intel import FeedSnapshot, IndicatorIndex, IntelEnricher, flatten_ranges

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
INTEL = "threat-intel"


def _snap(name: str, confidence: int, indicators: list[Indicator], **kw: object) -> FeedSnapshot:
    return FeedSnapshot(name, confidence, indicators, kw.pop("fetched_at", NOW), **kw)  # type: ignore[arg-type]


def _ips(*values: str | None) -> pl.DataFrame:
    return pl.DataFrame({"source.ip": list(values)}, schema={"source.ip": pl.String})


@pytest.fixture(scope="module")
def real_index(datasets: Path) -> IndicatorIndex:
    """Spamhaus DROP, DROPv6, Feodo and the Tor exits, at the confidence a shop would give them."""
    root = datasets / INTEL

    def load(fmt: str, name: str) -> list[Indicator]:
        return parse_feed(fmt, (root / name).read_text()).indicators

    return IndicatorIndex.build(
        [
            _snap("spamhaus_drop", 85, load("spamhaus", "spamhaus_drop.txt")),
            _snap("spamhaus_dropv6", 85, load("spamhaus", "spamhaus_dropv6.txt")),
            _snap("feodo", 95, load("abusech_csv", "feodotracker_ipblocklist.csv"), ttl=None),
            _snap("tor_exits", 30, load("ipset", "firehol/tor_exits.ipset"), type="anonymizer"),
            _snap("firehol_level1", 60, load("netset", "firehol/firehol_level1.netset")),
        ],
        now=NOW,
    )


def test_it_is_an_enricher(real_index: IndicatorIndex) -> None:
    enricher = IntelEnricher(real_index)
    assert isinstance(enricher, Enricher)
    assert enricher.provides <= EVENT_SCHEMA.keys()


def test_known_bad_and_adjacent_addresses(real_index: IndicatorIndex) -> None:
    # 1.10.16.0/20 is on Spamhaus DROP (and FireHOL level 1, which includes it);
    # 1.10.15.255 and 1.10.32.0 are the addresses just outside it.
    batch = _ips(
        "1.10.16.0", "1.10.31.255", "1.10.15.255", "1.10.32.0", "192.9.135.73", "192.9.135.74"
    )
    out = IntelEnricher(real_index).enrich(batch)
    assert out.height == batch.height and out["source.ip"].equals(batch["source.ip"])
    assert out["threat.indicator.feed"].to_list() == [
        "spamhaus_drop", "spamhaus_drop", None, None, "feodo", None,
    ]  # fmt: skip
    assert out["threat.indicator.matched"].to_list()[:2] == ["1.10.16.0/20", "1.10.16.0/20"]
    assert out["threat.indicator.confidence"].to_list() == [85, 85, None, None, 95, None]
    assert out["threat.indicator.type"].to_list()[0] == "ipv4-addr"
    # both feeds list the netblock: their confidences combine (1 - 0.15 * 0.4 = 0.94)
    assert out["source.reputation"].to_list() == [94, 94, None, None, 95, None]


def test_agrees_with_ipaddress_on_random_addresses(
    real_index: IndicatorIndex, datasets: Path
) -> None:
    """The vectorized lookup gives what a plain ipaddress scan gives, address by address."""
    drop = parse_feed("spamhaus", (datasets / INTEL / "spamhaus_drop.txt").read_text()).indicators
    nets = [ipaddress.ip_network(i.value) for i in drop]
    rng = random.Random(7)
    inside = [
        str(n.network_address + rng.randrange(n.num_addresses)) for n in rng.sample(nets, 300)
    ]
    edges = [str(n.broadcast_address + 1) for n in nets[:200]] + [
        str(n.network_address - 1) for n in nets[:200]
    ]
    noise = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(1000)]
    values = inside + edges + noise
    index = IndicatorIndex.build([_snap("drop", 80, drop)], now=NOW, match_private=True)
    entry, _ = index.match_ips(pl.Series(values))
    bounds = [(int(n.network_address), int(n.broadcast_address)) for n in nets]
    numbers = [int(ipaddress.ip_address(v)) for v in values]
    expected = [any(lo <= x <= hi for lo, hi in bounds) for x in numbers]
    assert (entry >= 0).tolist() == expected
    assert sum(expected) >= 300


def test_nested_networks_from_different_feeds() -> None:
    wide = _snap("wide", 40, [Indicator("ipv4-addr", "10.20.0.0/16")])
    mid = _snap("mid", 90, [Indicator("ipv4-addr", "10.20.8.0/21")])
    narrow_low = _snap(
        "narrow",
        20,
        [Indicator("ipv4-addr", "10.20.9.0/24"), Indicator("ipv4-addr", "10.20.200.7/32")],
    )
    index = IndicatorIndex.build([wide, mid, narrow_low], now=NOW, match_private=True)
    probes = {
        "10.20.0.1": ("wide", 40),  # only the /16
        "10.20.8.1": ("mid", 90),  # /16 and /21: the higher confidence wins
        "10.20.9.9": ("mid", 90),  # inside all three: still the /21
        "10.20.16.0": ("wide", 40),  # just past the /21: back to the /16
        "10.20.200.7": ("wide", 40),  # /32 of a weaker feed inside the /16
        "10.21.0.0": (None, None),
    }
    out = IntelEnricher(index).enrich(_ips(*probes))
    got = list(zip(out["threat.indicator.feed"], out["threat.indicator.confidence"], strict=True))
    assert got == list(probes.values())
    # reputation combines the feeds present: /16+/21+/24 -> 1 - .6*.1*.8 = 0.952
    assert out["source.reputation"].to_list() == [40, 94, 95, 40, 52, None]


def test_equal_confidence_prefers_the_more_specific_network() -> None:
    index = IndicatorIndex.build(
        [
            _snap("a", 70, [Indicator("ipv4-addr", "45.0.0.0/8")]),
            _snap("b", 70, [Indicator("ipv4-addr", "45.134.26.0/24")]),
        ],
        now=NOW,
    )
    out = IntelEnricher(index).enrich(_ips("45.134.26.10", "45.1.1.1"))
    assert out["threat.indicator.matched"].to_list() == ["45.134.26.0/24", "45.0.0.0/8"]


def test_flatten_ranges_splits_at_every_boundary() -> None:
    lo = np.array([0, 10, 20, 15, 100], np.uint32)
    hi = np.array([50, 30, 25, 40, 100], np.uint32)
    rank = np.array([1, 2, 3, 0, 1])
    confidence = np.array([10, 20, 30, 5, 10])
    starts, ends, entry, rep = flatten_ranges(lo, hi, rank, np.arange(5), confidence, np.arange(5))
    pieces = list(zip(starts.tolist(), ends.tolist(), entry.tolist(), rep.tolist(), strict=True))
    # the winner by rank, and the reputation of every range covering the piece (noisy-OR)
    assert pieces == [
        (0, 9, 0, 10),
        (10, 14, 1, 28),  # 1 - .9 * .8
        (15, 19, 1, 32),  # range 3 (rank 0) starts: the winner stays, the reputation grows
        (20, 25, 2, 52),
        (26, 30, 1, 32),
        (31, 40, 0, 15),
        (41, 50, 0, 10),
        (100, 100, 4, 10),
    ]
    assert all(a[1] < b[0] for a, b in itertools.pairwise(pieces))


def test_ipv6(real_index: IndicatorIndex) -> None:
    out = IntelEnricher(real_index).enrich(
        _ips(
            "2001:678:6c4::1",
            "2001:678:6c4:ffff:ffff:ffff:ffff:ffff",
            "2001:678:6c5::",
            "[2001:678:6c4::9]",
            "::1",
            "fe80::1%eth0",
        )
    )
    assert out["threat.indicator.feed"].to_list() == [
        "spamhaus_dropv6",
        "spamhaus_dropv6",
        None,
        "spamhaus_dropv6",
        None,
        None,
    ]
    assert out["threat.indicator.type"].to_list()[0] == "ipv6-addr"


def test_ipv4_mapped_ipv6_is_matched_as_ipv4(real_index: IndicatorIndex) -> None:
    out = IntelEnricher(real_index).enrich(_ips("::ffff:192.9.135.73"))
    assert out["threat.indicator.feed"].item() == "feodo"


def test_private_addresses_need_match_private(datasets: Path) -> None:
    level1 = parse_feed(
        "netset", (datasets / INTEL / "firehol/firehol_level1.netset").read_text()
    ).indicators
    assert any(i.value == "10.0.0.0/8" for i in level1)  # FireHOL level 1 lists the bogons
    batch = _ips("10.1.2.3", "192.168.1.20", "127.0.0.1")
    quiet = IntelEnricher(IndicatorIndex.build([_snap("l1", 60, level1)], now=NOW)).enrich(batch)
    assert quiet["threat.indicator.feed"].null_count() == 3
    loud = IntelEnricher(
        IndicatorIndex.build([_snap("l1", 60, level1)], now=NOW, match_private=True)
    ).enrich(batch)
    assert loud["threat.indicator.feed"].null_count() == 0


def test_garbage_addresses_do_not_match_or_crash(real_index: IndicatorIndex) -> None:
    out = IntelEnricher(real_index).enrich(
        _ips("1.10.16.300", "1.10.16", "", "localhost", None, "1.10.16.5 ", ":::")
    )
    assert out["threat.indicator.feed"].to_list() == [
        None,
        None,
        None,
        None,
        None,
        "spamhaus_drop",
        None,
    ]


def test_expiry_is_counted_and_stops_matching(datasets: Path) -> None:
    feodo = parse_feed(
        "abusech_csv", (datasets / INTEL / "feodotracker_ipblocklist.csv").read_text()
    ).indicators
    fetched = datetime(2024, 4, 4, 8, 0, tzinfo=UTC)
    snap = FeedSnapshot("feodo", 95, feodo, fetched, ttl=timedelta(days=7))
    # On 2024-04-05, rows last online before 2024-03-29 are more than 7 days old.
    index = IndicatorIndex.build([snap], now=datetime(2024, 4, 5, tzinfo=UTC))
    stale = sum(
        1
        for i in feodo
        if i.seen is not None and i.seen + timedelta(days=7) <= datetime(2024, 4, 5, tzinfo=UTC)
    )
    assert index.stats["feodo"].expired == stale == 22
    assert index.stats["feodo"].entries == 28 - stale
    out = IntelEnricher(index).enrich(
        _ips("213.199.41.33", "85.239.243.155")
    )  # online 04-04, offline since 03-11
    assert out["threat.indicator.feed"].to_list() == ["feodo", None]
    live = [
        i.seen + timedelta(days=7)
        for i in feodo
        if i.seen and i.seen + timedelta(days=7) > datetime(2024, 4, 5, tzinfo=UTC)
    ]
    assert index.next_expiry == min(live)
    # later, everything has expired
    later = IndicatorIndex.build([snap], now=datetime(2024, 6, 1, tzinfo=UTC))
    assert later.size == 0 and later.stats["feodo"].expired == 28
    matches = later.explain("213.199.41.33", now=datetime(2024, 6, 1, tzinfo=UTC))
    assert [(m.feed, m.expired) for m in matches] == [("feodo", True)]


def test_stix_valid_until_and_ttl(fixtures_dir: Path) -> None:
    content = parse_stix((fixtures_dir / "intel" / "stix_bundle.json").read_text())
    index = IndicatorIndex.build(
        [_snap("isac", 50, content.indicators, ttl=timedelta(days=30))], now=NOW
    )
    assert index.stats["isac"].expired == 1  # the old scanner's valid_until is in 2025
    out = IntelEnricher(index).enrich(
        _ips("45.134.26.10", "193.32.162.45", "185.180.143.141", "2a0d:5600:24::5")
    )
    assert out["threat.indicator.confidence"].to_list() == [90, 70, None, 70]


def test_domains_match_subdomains_not_look_alikes(fixtures_dir: Path) -> None:
    event = parse_misp_event((fixtures_dir / "intel" / "misp_event.json").read_text())
    index = IndicatorIndex.build([_snap("misp", 75, event.indicators)], now=NOW)
    batch = pl.DataFrame(
        {
            "destination.domain": [
                "checkout-verify.example",
                "static.eu.checkout-verify.example",
                "CHECKOUT-VERIFY.EXAMPLE.",
                "notcheckout-verify.example",
                "checkout-verify.example.com",
                "api.cardcheck.example",
                "cardcheck.example",
                None,
            ]
        }
    )
    out = IntelEnricher(index).enrich(batch)
    assert out["threat.indicator.matched"].to_list() == [
        "checkout-verify.example",
        "checkout-verify.example",
        "checkout-verify.example",
        None,
        None,
        "api.cardcheck.example",
        None,
        None,
    ]
    assert out["threat.indicator.type"].to_list()[0] == "domain-name"
    assert (
        out["source.reputation"].null_count() == batch.height
    )  # domains do not make a source's reputation


def test_urls_are_normalized_and_their_hosts_matched(fixtures_dir: Path) -> None:
    urls = parse_feed(
        "abusech_csv", (fixtures_dir / "intel" / "urlhaus.csv").read_text()
    ).indicators
    domains = [Indicator("domain-name", "cdn-skimmer.example")]
    index = IndicatorIndex.build([_snap("urlhaus", 80, urls), _snap("isac", 60, domains)], now=NOW)
    batch = pl.DataFrame(
        {
            "url.full": [
                "HTTPS://JQUERY-CDN-STATIC.example:443/js/jquery.min.js#v3",
                "https://jquery-cdn-static.example/js/other.js",
                "https://user:pw@cdn-skimmer.example/collect?id=4",
                "http://update-flash-player.example/install.exe",
                "https://shop.example/js/jquery.min.js",
            ]
        }
    )
    out = IntelEnricher(index).enrich(batch)
    assert out["threat.indicator.type"].to_list() == ["url", None, "domain-name", "url", None]
    assert out["threat.indicator.feed"].to_list() == ["urlhaus", None, "isac", "urlhaus", None]


def test_best_match_across_fields_and_producer_values_kept(real_index: IndicatorIndex) -> None:
    batch = conform(
        pl.DataFrame(
            {
                "source.ip": ["185.220.101.7", "185.220.101.7", "8.8.8.8"],
                "client.ip": ["192.9.135.73", None, None],
                "threat.indicator.feed": [None, "partner_feed", None],
                "threat.indicator.confidence": [None, 99, None],
                "source.reputation": [None, 99, 10],
            }
        )
    )
    tor = {"185.220.101.7"} & {
        i.value.split("/")[0]
        for s in real_index.snapshots
        if s.name == "tor_exits"
        for i in s.indicators
    }
    assert tor, "the Tor sample lists 185.220.101.7"
    out = IntelEnricher(real_index).enrich(batch)
    assert out.columns == batch.columns
    # row 0: Tor exit (30) as source, Feodo C2 (95) as client: the stronger one is reported
    assert out.row(0, named=True)["threat.indicator.feed"] == "feodo"
    assert out.row(0, named=True)["source.reputation"] == 95
    # row 1: a producer's own indicator is kept; reputation keeps the higher value
    assert out.row(1, named=True)["threat.indicator.feed"] == "partner_feed"
    assert out.row(1, named=True)["source.reputation"] == 99
    assert out.row(2, named=True)["source.reputation"] == 10


def test_empty_index_and_empty_batch() -> None:
    empty = IntelEnricher(IndicatorIndex.empty(NOW))
    out = empty.enrich(_ips("1.2.3.4"))
    assert out["threat.indicator.feed"].to_list() == [None]
    assert empty.enrich(pl.DataFrame(schema={"@timestamp": pl.Datetime("us", "UTC")})).height == 0


def test_explain_lists_every_feed(real_index: IndicatorIndex) -> None:
    matches = real_index.explain("1.10.16.9")
    assert [(m.feed, m.indicator, m.confidence, m.expired) for m in matches] == [
        ("spamhaus_drop", "1.10.16.0/20", 85, False),
        ("firehol_level1", "1.10.16.0/20", 60, False),
    ]
    assert matches[0].note == "SBL256894"
    assert real_index.explain("1.10.32.0") == []


def test_a_batch_matches_on_unique_values(real_index: IndicatorIndex) -> None:
    many = _ips(*(["1.10.16.1", "8.8.4.4"] * 5000))
    out = IntelEnricher(real_index).enrich(many)
    assert out["threat.indicator.feed"].value_counts().sort("threat.indicator.feed")[
        "count"
    ].to_list() == [5000, 5000]
