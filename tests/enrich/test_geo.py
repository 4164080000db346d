"""Country and ASN enrichment from the shipped offline tables."""

from __future__ import annotations

import ipaddress
import random

import polars as pl
import pytest

from shopwatch.contract import EVENT_SCHEMA, conform
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.geo import GeoEnricher, load_tables, parse_addresses
from shopwatch.errors import ConfigError

SRC = (
    "source.geo.country_iso_code",
    "source.as.number",
    "source.as.organization.name",
    "source.as.type",
)
CLI = (
    "client.geo.country_iso_code",
    "client.as.number",
    "client.as.organization.name",
    "client.as.type",
)


@pytest.fixture(scope="module")
def geo() -> GeoEnricher:
    return GeoEnricher()


def _row(frame: pl.DataFrame, i: int, cols: tuple[str, ...] = SRC) -> tuple[object, ...]:
    return tuple(frame[i, c] for c in cols)


def test_is_an_enricher(geo: GeoEnricher) -> None:
    assert isinstance(geo, Enricher)
    assert set(SRC) | set(CLI) == geo.provides
    assert set(geo.provides) <= set(EVENT_SCHEMA)


def test_known_networks(geo: GeoEnricher) -> None:
    ips = [
        "8.8.8.8",  # Google Public DNS
        "1.1.1.1",  # Cloudflare
        "80.133.10.1",  # Deutsche Telekom dial-up/DSL
        "2001:4860:4860::8888",  # Google Public DNS over IPv6
        "2003:e5:1234::1",  # Deutsche Telekom IPv6
        "66.249.66.1",  # Googlebot
        "2606:4700:4700::1111",  # Cloudflare IPv6
        "::ffff:8.8.4.4",  # IPv4-mapped IPv6
    ]
    out = geo.enrich(pl.DataFrame({"source.ip": ips}))
    assert _row(out, 0, SRC[:3]) == ("US", 15169, "Google LLC")
    assert _row(out, 1, SRC[:3])[1:] == (13335, "Cloudflare, Inc.")
    assert _row(out, 2, SRC[:3]) == ("DE", 3320, "Deutsche Telekom AG")
    assert _row(out, 3, SRC[:3]) == ("US", 15169, "Google LLC")
    assert _row(out, 4, SRC[:3]) == ("DE", 3320, "Deutsche Telekom AG")
    assert _row(out, 5, SRC[:3])[1] == 15169
    assert _row(out, 6, SRC[:3])[1] == 13335
    assert _row(out, 7, SRC[:3]) == ("US", 15169, "Google LLC")


def test_private_garbage_and_nulls_give_nulls(geo: GeoEnricher) -> None:
    ips = [
        "192.168.1.1", "10.0.0.1", "172.16.5.4", "127.0.0.1", "100.64.0.1", "169.254.1.1",
        "::1", "fe80::1", "fc00::1", "2001:db8::1", "224.0.0.1", "0.0.0.0",
        "999.1.1.1", "-", "", "1.2.3", "1.2.3.4.5", "not an ip", "8.8.8.8/24", ":::", None,
    ]  # fmt: skip
    out = geo.enrich(pl.DataFrame({"source.ip": ips}, schema={"source.ip": pl.String}))
    assert out.height == len(ips)
    assert out.select(SRC).null_count().row(0) == (len(ips),) * len(SRC)
    assert out["source.ip"].to_list() == ips


def test_keeps_rows_order_and_other_columns(geo: GeoEnricher) -> None:
    rng = random.Random(3)
    pool = ["8.8.8.8", "1.1.1.1", "80.133.10.1", "10.1.1.1", None, "garbage"]
    ips = [rng.choice(pool) for _ in range(5000)]
    batch = pl.DataFrame({"event.id": [str(i) for i in range(5000)], "source.ip": ips})
    out = geo.enrich(batch)
    assert out["event.id"].to_list() == batch["event.id"].to_list()
    assert out["source.ip"].to_list() == ips
    expect = {"8.8.8.8": 15169, "1.1.1.1": 13335, "80.133.10.1": 3320}
    assert out["source.as.number"].to_list() == [expect.get(ip) for ip in ips]  # type: ignore[arg-type]


def test_client_ip_and_existing_values_kept(geo: GeoEnricher) -> None:
    batch = pl.DataFrame(
        {
            "source.ip": ["104.16.0.1", "104.16.0.1"],  # a CDN edge in front of the shop
            "client.ip": ["80.133.10.1", "2001:4860:4860::8888"],
            "source.geo.country_iso_code": ["NL", None],  # given by the producer: kept
        }
    )
    out = geo.enrich(batch)
    assert out["source.geo.country_iso_code"].to_list()[0] == "NL"
    assert out["source.as.number"].to_list() == [13335, 13335]
    assert out["client.geo.country_iso_code"].to_list() == ["DE", "US"]
    assert out["client.as.number"].to_list() == [3320, 15169]


def test_missing_and_all_null_columns(geo: GeoEnricher) -> None:
    out = geo.enrich(pl.DataFrame({"event.id": ["a", "b"]}))
    assert out.height == 2
    assert out.schema["source.as.number"] == pl.Int64
    assert out.select(SRC + CLI).null_count().row(0) == (2,) * 8
    full = conform(pl.DataFrame({"event.id": ["a"]}))
    out = geo.enrich(full)
    assert out.columns == full.columns
    assert out.schema == full.schema
    empty = geo.enrich(conform(pl.DataFrame({"source.ip": []}, schema={"source.ip": pl.String})))
    assert empty.height == 0 and set(SRC) <= set(empty.columns)


def test_agrees_with_the_library_per_address_lookup() -> None:
    """The vectorized tables answer exactly what plevin answers, address by address."""
    import plevin
    import plevin_db_country
    import plevin_db_network

    network, country = plevin.Plevin(plevin_db_network.PATH), plevin.Plevin(plevin_db_country.PATH)
    rng = random.Random(11)
    ips = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(1500)]
    ips += [
        str(ipaddress.IPv6Address(((0x2000 + rng.getrandbits(12)) << 112) | rng.getrandbits(112)))
        for _ in range(500)
    ]
    got = load_tables().lookup(pl.Series(ips))
    for ip, (cc, asn, _org, kind) in zip(ips, got.iter_rows(), strict=True):
        found = network.lookup(ip)
        if not found.is_global:
            assert (cc, asn, kind) == (None, None, None), ip
            continue
        expected_asn = found.network.asn if found.network and found.network.asn else None
        operator = found.network.operator if found.network else None
        expected_kind = (operator.category or None) if operator else None
        place = country.lookup(ip).place
        expected_cc = place.country.code if place and place.country else None
        assert (cc, asn, kind) == (expected_cc, expected_asn, expected_kind), ip
    assert got["asn"].null_count() < len(ips) // 2  # most of the sample is routed


def test_parse_addresses_masks() -> None:
    v4, is_v4, _v6, is_v6 = parse_addresses(
        pl.Series(["8.8.8.8", "256.1.1.1", "2001:4860::1", "::ffff:1.1.1.1", "10.0.0.1", None])
    )
    assert is_v4.tolist() == [True, False, False, True, False, False]
    assert is_v6.tolist() == [False, False, True, False, False, False]
    assert int(v4[0]) == int(ipaddress.IPv4Address("8.8.8.8"))
    assert int(v4[3]) == int(ipaddress.IPv4Address("1.1.1.1"))


def test_from_settings() -> None:
    from shopwatch.config import Settings

    only_source = GeoEnricher.from_settings(Settings(enrich={"geo": {"fields": ["source.ip"]}}))
    assert only_source.provides == frozenset(SRC)
    with pytest.raises(ConfigError, match="unknown keys"):
        GeoEnricher.from_settings(Settings(enrich={"geo": {"feilds": ["source.ip"]}}))
    with pytest.raises(ConfigError, match="cannot read"):
        GeoEnricher(fields=("destination.ip",))


def test_says_what_a_network_is_used_for() -> None:
    """Hosting and home networks told apart, from the operator the database knows."""
    geo = GeoEnricher(fields=("source.ip",))
    out = geo.enrich(
        conform(pl.DataFrame({"source.ip": ["167.99.0.165", "98.215.17.203", "10.1.2.3"]}))
    )
    assert out["source.as.type"].to_list() == ["hosting", "residential", None]
