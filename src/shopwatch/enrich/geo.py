"""Country and autonomous system of ``source.ip`` and ``client.ip``, from offline tables.

Data: the ``plevin-db-country`` and ``plevin-db-network`` wheels (read with the ``plevin``
reader), installed from PyPI and never downloaded at run time. Candidates weighed:

- ``plevin-db-*`` (chosen): rebuilt daily-to-monthly; the shipped files are 0.4 MB
  (country: where an address is used, about 298k IPv4 and 118k IPv6 ranges) and 7.5 MB
  (network: AS number, holder and operator company for every announced and registered
  range, about 1.17M IPv4 and 320k IPv6 ranges, 147k networks, and for the operators it
  knows what their network is used for: ``hosting``, ``residential``, ``cellular``,
  ``business``, ``cdn``, ``education`` and a few more, as ``source.as.type``). The build
  date is :attr:`GeoTables.built`.
- ``geoip2fast``: GeoLite2 country and AS *names* for IPv4 and IPv6, but no AS numbers,
  and its data is from June 2024.
- ``python-geoacumen`` (country only, June 2024), ``maxminddb-geolite2`` and the
  ``python-geoip-geolite2*`` family (city only, 2015 to 2019), ``iptocc`` (country only):
  no ASN. ``pyasn``, ``ip2asn``, ``db-geoip``, ``ipinfo-db`` ship no data at all.

Lookups are vectorized: each batch's unique addresses are parsed (IPv4 with Polars
expressions; IPv6, a minority, with ``socket.inet_pton`` behind a per-value cache), then
located with ``np.searchsorted`` in the range tables, which are decoded once per process
(about 1.3 s and 60 MB). Private, loopback, link-local, documentation and other
non-global addresses get null everywhere; nothing else flags them.
"""

from __future__ import annotations

import functools
import ipaddress
import socket
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
import structlog

from shopwatch.errors import ConfigError

__all__ = ["GeoEnricher", "GeoTables", "load_tables"]

log = structlog.get_logger(__name__)

#: Fields filled per address column: (country, AS number, AS organization name, AS type).
_OUTPUTS: dict[str, tuple[str, str, str, str]] = {
    "source.ip": (
        "source.geo.country_iso_code",
        "source.as.number",
        "source.as.organization.name",
        "source.as.type",
    ),
    "client.ip": (
        "client.geo.country_iso_code",
        "client.as.number",
        "client.as.organization.name",
        "client.as.type",
    ),
}

#: IPv4 ranges that are not globally routed (RFC 6890 and friends): (first, last).
_V4_SPECIAL: tuple[tuple[str, str], ...] = (
    ("0.0.0.0", "0.255.255.255"),
    ("10.0.0.0", "10.255.255.255"),
    ("100.64.0.0", "100.127.255.255"),
    ("127.0.0.0", "127.255.255.255"),
    ("169.254.0.0", "169.254.255.255"),
    ("172.16.0.0", "172.31.255.255"),
    ("192.0.0.0", "192.0.0.255"),
    ("192.0.2.0", "192.0.2.255"),
    ("192.168.0.0", "192.168.255.255"),
    ("198.18.0.0", "198.19.255.255"),
    ("198.51.100.0", "198.51.100.255"),
    ("203.0.113.0", "203.0.113.255"),
    ("224.0.0.0", "255.255.255.255"),
)
_V4_SPECIAL_LO = np.array([int(ipaddress.IPv4Address(a)) for a, _ in _V4_SPECIAL], np.uint64)
_V4_SPECIAL_HI = np.array([int(ipaddress.IPv4Address(b)) for _, b in _V4_SPECIAL], np.uint64)

_V4_PATTERN = r"^\s*(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\s*$"
_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"
_V6_CACHE_LIMIT = 200_000


# --------------------------------------------------------------------------------------
# The tables


@dataclass(frozen=True, slots=True)
class _Ranges:
    """Sorted range starts of one address family and the row each range points to."""

    starts: np.ndarray  # uint64 (IPv4) or S16 big-endian (IPv6), strictly increasing
    rows: np.ndarray  # uint32; 0 means "nothing known", else a 1-based row id

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Row ids (0 = none) of the ranges holding ``keys`` (same dtype as ``starts``)."""
        if keys.size == 0:
            return np.zeros(0, np.uint32)
        at = np.searchsorted(self.starts, keys, side="right").astype(np.int64) - 1
        found = self.rows[np.maximum(at, 0)]
        return np.where(at >= 0, found, 0).astype(np.uint32)


@dataclass(frozen=True, slots=True)
class GeoTables:
    """Country and network range tables held as NumPy arrays (built once, read-only).

    Country rows index ``countries`` (ISO 3166 alpha-2, index 0 is null); network rows
    index ``asns``, ``organizations`` and ``types`` (index 0 is null, an AS number 0 means
    the range is registered but not announced; a type is null where the operator's use is
    not known).
    """

    country_v4: _Ranges
    country_v6: _Ranges
    network_v4: _Ranges
    network_v6: _Ranges
    countries: pl.Series  # String, [None, "AD", "AE", ...]
    asns: pl.Series  # Int64
    organizations: pl.Series  # String
    built: str
    types: pl.Series | None = None  # String: hosting, residential, cellular, ...

    def lookup(self, ips: pl.Series) -> pl.DataFrame:
        """Country, AS number and organization for each string of ``ips``, in order.

        Returns columns ``country``, ``asn``, ``organization``, ``type``; unparsable, null and
        non-global addresses give nulls. Cost is linear in ``len(ips)``: call it on unique
        values.
        """
        v4, is_v4, v6, is_v6 = parse_addresses(ips)
        n = len(ips)
        country = np.zeros(n, np.uint32)
        network = np.zeros(n, np.uint32)
        if is_v4.any():
            keys = v4[is_v4]
            country[is_v4] = self.country_v4.find(keys)
            network[is_v4] = self.network_v4.find(keys)
        if is_v6.any():
            keys6 = v6[is_v6]
            country[is_v6] = self.country_v6.find(keys6)
            network[is_v6] = self.network_v6.find(keys6)
        country_ids = pl.Series(country, dtype=pl.UInt32)
        network_ids = pl.Series(network, dtype=pl.UInt32)
        frame = pl.DataFrame(
            {
                "country": self.countries.gather(country_ids),
                "asn": self.asns.gather(network_ids),
                "organization": self.organizations.gather(network_ids),
                "type": (
                    self.types.gather(network_ids)
                    if self.types is not None
                    else pl.Series([None] * n, dtype=pl.String)
                ),
            }
        )
        return frame.with_columns(
            pl.when(pl.col("asn") > 0).then(pl.col("asn")).alias("asn"),
            pl.when(pl.col("organization") != "").then(pl.col("organization")),
            pl.when(pl.col("type") != "").then(pl.col("type")),
        )


def _family(file: Any, spine: str, column: str, wide: bool) -> _Ranges:
    """Decode one spine (range starts) and its link column from a plevin file."""
    index = file.sections[spine]
    starts: list[int] = []
    for group in range(-(-index.count // index.per_group)):
        starts.extend(index.values(group))
    links = _column(file, column)
    if wide:
        keys = np.array([value.to_bytes(16, "big") for value in starts], dtype="S16")
    else:
        keys = np.array(starts, dtype=np.uint64)
    rows = np.array(links, dtype=np.uint32)
    if len(keys) != len(rows) or (len(keys) > 1 and not bool(np.all(keys[1:] > keys[:-1]))):
        raise ConfigError(f"{file.path}: {spine} is not a strictly increasing range table")
    return _Ranges(keys, rows)


def _column(file: Any, name: str) -> list[int]:
    section = file.sections[name]
    out: list[int] = []
    for block in range(section.blocks):
        out.extend(section.whole(block))
    return out


@functools.cache
def load_tables() -> GeoTables:
    """Decode the shipped country and network databases (once per process, ~1.3 s).

    Raises :class:`ConfigError` when a data wheel is missing or unreadable.
    """
    started = time.perf_counter()
    try:
        import plevin_db_country
        import plevin_db_network
        from plevin.reader import File

        country_file = File(plevin_db_country.PATH)
        network_file = File(plevin_db_network.PATH)
        # Country: spine -> place row -> city row -> country code text.
        place_city = _column(country_file, "link.place.city")
        city_country = _column(country_file, "col.city.country")
        pool = country_file.sections["strings"]
        codes: list[str | None] = [None]
        for city in place_city:
            code = pool[city_country[city - 1]] if city else ""
            codes.append(code or None)
        country_v4 = _family(country_file, "spine.v4", "spine.v4.place", wide=False)
        country_v6 = _family(country_file, "spine.v6", "spine.v6.place", wide=True)
        # Network: spine -> network row -> AS number, handle, operator -> company.
        network_v4 = _family(network_file, "spine.v4", "spine.v4.network", wide=False)
        network_v6 = _family(network_file, "spine.v6", "spine.v6.network", wide=True)
        asns = _column(network_file, "col.network.asn")
        handles = _column(network_file, "col.network.handle")
        operators = _column(network_file, "link.network.operator")
        companies = _column(network_file, "col.operator.company")
        categories = _column(network_file, "col.operator.category")
        vocabulary = list(network_file.head["vocabularies"]["categories"])
        strings = network_file.sections["strings"]
        names: list[str | None] = [None]
        kinds: list[str | None] = [None]
        for operator, handle in zip(operators, handles, strict=True):
            company = strings[companies[operator - 1]] if operator else ""
            names.append(company or strings[handle] or None)
            code = categories[operator - 1] if operator else 0
            kinds.append(vocabulary[code] if 0 < code < len(vocabulary) else None)
        built = f"country {country_file.built}, network {network_file.built}"
    except (ImportError, KeyError, ValueError, OSError) as err:
        raise ConfigError(
            "the geo/ASN databases could not be read; install the plevin, "
            f"plevin-db-country and plevin-db-network packages ({err})"
        ) from err
    tables = GeoTables(
        country_v4=country_v4,
        country_v6=country_v6,
        network_v4=network_v4,
        network_v6=network_v6,
        countries=pl.Series("country", codes, dtype=pl.String),
        asns=pl.Series("asn", [0, *asns], dtype=pl.Int64),
        organizations=pl.Series("organization", names, dtype=pl.String),
        built=built,
        types=pl.Series("type", kinds, dtype=pl.String),
    )
    log.info(
        "geo_tables_loaded",
        built=built,
        ranges_v4=len(network_v4.starts) + len(country_v4.starts),
        ranges_v6=len(network_v6.starts) + len(country_v6.starts),
        networks=len(asns),
        seconds=round(time.perf_counter() - started, 3),
    )
    return tables


# --------------------------------------------------------------------------------------
# Address parsing


def parse_addresses(ips: pl.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse address strings into search keys: ``(v4, is_v4, v6, is_v6)``.

    ``v4`` holds uint64 numbers, ``v6`` 16-byte big-endian keys (``S16``); the masks say
    which entries are valid, globally routed addresses of each family. IPv4-mapped IPv6
    (``::ffff:1.2.3.4``) counts as IPv4; zone ids (``%eth0``) and brackets are stripped.
    IPv4 is parsed with Polars expressions; IPv6 per unique value with a bounded cache.
    """
    s = ips.cast(pl.String)
    n = len(s)
    parts = s.str.extract_groups(_V4_PATTERN).struct.unnest()
    octets = [parts.get_column(name).cast(pl.UInt64, strict=False) for name in parts.columns]
    ok = pl.Series([True] * n) if n else pl.Series([], dtype=pl.Boolean)
    number = pl.Series([0] * n, dtype=pl.UInt64)
    for octet in octets:
        ok = ok & octet.is_not_null() & (octet.fill_null(0) <= 255)
        number = number * 256 + octet.fill_null(0)
    v4 = np.array(number.to_numpy(), dtype=np.uint64)
    is_v4 = np.array(ok.fill_null(False).to_numpy(), dtype=bool)

    v6 = np.zeros(n, dtype="S16")
    is_v6 = np.zeros(n, dtype=bool)
    colon = s.str.contains(":", literal=True).fill_null(False).to_numpy().astype(bool)
    if colon.any():
        where = np.flatnonzero(colon)
        texts = s.gather(pl.Series(where, dtype=pl.UInt32)).to_list()
        for at, text in zip(where, texts, strict=True):
            parsed = _parse_v6(text)
            if parsed is None:
                continue
            if isinstance(parsed, int):
                v4[at] = parsed
                is_v4[at] = True
            else:
                v6[at] = parsed
                is_v6[at] = True
    if is_v4.any():
        is_v4 &= ~_v4_special(v4)
    return v4, is_v4, v6, is_v6


def _v4_special(numbers: np.ndarray) -> np.ndarray:
    """True where an IPv4 number falls in a non-global range (vectorized)."""
    at = np.searchsorted(_V4_SPECIAL_LO, numbers, side="right").astype(np.int64) - 1
    inside = numbers <= _V4_SPECIAL_HI[np.maximum(at, 0)]
    return (at >= 0) & inside


@functools.lru_cache(maxsize=_V6_CACHE_LIMIT)
def _parse_v6(text: str) -> bytes | int | None:
    """16 key bytes of a global IPv6 address, the IPv4 number it maps, or None."""
    raw = text.strip().removeprefix("[").removesuffix("]").split("%", 1)[0]
    try:
        packed = socket.inet_pton(socket.AF_INET6, raw)
    except (OSError, ValueError):
        return None
    if packed.startswith(_MAPPED_PREFIX):
        return int.from_bytes(packed[12:], "big")
    if not ipaddress.IPv6Address(packed).is_global:
        return None
    return packed


# --------------------------------------------------------------------------------------
# The enricher


class GeoEnricher:
    """Fills country and AS fields from ``source.ip`` and ``client.ip``.

    Values already present in a row (e.g. given by an ECS producer) are kept; only nulls
    are filled. Each batch is looked up on its unique addresses only and joined back, so
    rows and their order are unchanged. The tables load on first use unless given.
    """

    name = "geo"

    def __init__(
        self,
        fields: Sequence[str] = ("source.ip", "client.ip"),
        tables: GeoTables | None = None,
    ) -> None:
        unknown = [f for f in fields if f not in _OUTPUTS]
        if unknown:
            raise ConfigError(
                f"geo enricher cannot read {unknown}; known address fields: {sorted(_OUTPUTS)}"
            )
        self.fields = tuple(fields)
        self.provides = frozenset(col for f in self.fields for col in _OUTPUTS[f])
        self._tables = tables

    @classmethod
    def from_settings(cls, settings: Any) -> GeoEnricher:
        """Build from ``settings.enrich["geo"]`` (optional key ``fields``)."""
        options = dict((getattr(settings, "enrich", None) or {}).get("geo") or {})
        fields = options.pop("fields", ("source.ip", "client.ip"))
        if options:
            raise ConfigError(f"enrich.geo has unknown keys {sorted(options)}; known: ['fields']")
        return cls(fields=tuple(fields))

    @property
    def tables(self) -> GeoTables:
        """The range tables (loaded on first access, shared by the process)."""
        if self._tables is None:
            self._tables = load_tables()
        return self._tables

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with country and AS columns filled for every address column present."""
        out = batch
        for field in self.fields:
            out = self._enrich_one(out, field, _OUTPUTS[field])
        return out

    def _enrich_one(
        self, batch: pl.DataFrame, field: str, targets: tuple[str, str, str, str]
    ) -> pl.DataFrame:
        country_col, asn_col, org_col, type_col = targets
        dtypes: dict[str, pl.DataType] = {
            country_col: pl.String(),
            asn_col: pl.Int64(),
            org_col: pl.String(),
            type_col: pl.String(),
        }
        batch = _ensure(batch, dtypes.items())
        if field not in batch.columns or batch.height == 0:
            return batch
        addresses = batch.get_column(field).cast(pl.String, strict=False)
        unique = addresses.drop_nulls().unique()
        if unique.len() == 0:
            return batch
        found = self.tables.lookup(unique)
        keys = unique.to_frame("_ip").with_columns(
            found.get_column("country").alias("_country"),
            found.get_column("asn").alias("_asn"),
            found.get_column("organization").alias("_org"),
            found.get_column("type").alias("_type"),
        )
        joined = (
            batch.with_columns(addresses.alias("_ip"))
            .join(keys, on="_ip", how="left", maintain_order="left")
            .with_columns(
                pl.coalesce(pl.col(country_col), pl.col("_country")).alias(country_col),
                pl.coalesce(pl.col(asn_col), pl.col("_asn")).alias(asn_col),
                pl.coalesce(pl.col(org_col), pl.col("_org")).alias(org_col),
                pl.coalesce(pl.col(type_col), pl.col("_type")).alias(type_col),
            )
            .drop("_ip", "_country", "_asn", "_org", "_type")
        )
        return joined


def _ensure(batch: pl.DataFrame, columns: Iterable[tuple[str, pl.DataType]]) -> pl.DataFrame:
    """Add missing columns as typed nulls and cast present ones to ``dtype``."""
    exprs = []
    for name, dtype in columns:
        if name not in batch.columns:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
        elif batch.schema[name] != dtype:
            exprs.append(pl.col(name).cast(dtype, strict=False))
    return batch.with_columns(exprs) if exprs else batch
