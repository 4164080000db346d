"""Indicator store and matching: which rows of a batch touch a known-bad IP, domain or URL.

:class:`IndicatorIndex` is built from the feeds' snapshots (immutable; the feed loader
builds a new one after each refresh and swaps it in). Matching is vectorized:

- IPv4 as uint32 with NumPy. Every feed's networks are flattened into sorted,
  non-overlapping segments: nested or overlapping networks (from one feed or several)
  are split at all their boundaries and each piece keeps the best covering entry
  (highest confidence, then the most specific network, then feed order), plus a combined
  reputation. A lookup is one ``np.searchsorted`` over the batch's unique addresses.
- IPv6 the same way, with 16-byte big-endian keys (``S16``) parsed per unique value.
- Domains match themselves and their subdomains (a join on every suffix of the batch's
  unique names), URLs match after normalization (scheme and host lower-cased, default
  port, fragment and empty path dropped), hashes exactly.

Expiry: an indicator's end is its own ``expires`` (STIX ``valid_until``), else its feed's
ttl after it was last seen (``seen``) or, lacking that, after the feed was last fetched
or confirmed unchanged. Indicators already expired at build time are left out of the
index and counted per feed. Expiry is wall-clock (feed freshness), not event time.

Addresses that are not globally routed (private, loopback, documentation ranges, ...)
are not matched unless ``match_private``: composite lists such as FireHOL level 1 carry
the bogon ranges (10.0.0.0/8, ...), which would otherwise flag every internal host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import numpy as np
import polars as pl
import structlog

from shopwatch.enrich.feeds.base import Indicator, normalize_domain

__all__ = [
    "DOMAIN_FIELDS",
    "IP_FIELDS",
    "PROVIDES",
    "URL_FIELDS",
    "FeedSnapshot",
    "FeedStats",
    "IndicatorIndex",
    "IntelEnricher",
    "Match",
    "Segments",
    "flatten_ranges",
    "normalize_urls",
    "parse_ips",
]

log = structlog.get_logger(__name__)

#: Address columns matched against IP indicators, in order of preference.
IP_FIELDS: Final = ("source.ip", "client.ip", "destination.ip")
#: Columns holding a host name, matched against domain indicators (and their subdomains).
DOMAIN_FIELDS: Final = ("destination.domain", "url.domain")
#: Columns holding a URL, matched against URL indicators (and their host as a domain).
URL_FIELDS: Final = ("url.full", "url.original")
#: Address columns whose matches make ``source.reputation``.
REPUTATION_FIELDS: Final = ("source.ip", "client.ip")

PROVIDES: Final = frozenset(
    {
        "threat.indicator.feed",
        "threat.indicator.type",
        "threat.indicator.matched",
        "threat.indicator.confidence",
        "source.reputation",
    }
)

_V4_SPECIAL: Final = (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
    "172.16.0.0/12", "192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15",
    "198.51.100.0/24", "203.0.113.0/24", "224.0.0.0/3",
)  # fmt: skip
_V4_SPECIAL_LO = np.array(
    [int(ipaddress.IPv4Network(n).network_address) for n in _V4_SPECIAL], np.uint32
)
_V4_SPECIAL_HI = np.array(
    [int(ipaddress.IPv4Network(n).broadcast_address) for n in _V4_SPECIAL], np.uint32
)
_MAPPED = b"\x00" * 10 + b"\xff\xff"
_URL_PARTS = r"^\s*([A-Za-z][A-Za-z0-9+.\-]*)://(?:[^/?#@]*@)?([^/?#]*)([^#]*)"
_ENTRY_SCHEMA: Final[dict[str, pl.DataType]] = {
    "feed": pl.String(),
    "feed_type": pl.String(),
    "type": pl.String(),
    "indicator": pl.String(),
    "confidence": pl.Int64(),
    "expires": pl.Datetime("us", "UTC"),
    "note": pl.String(),
}


# --------------------------------------------------------------------------------------
# Feed snapshots and per-feed statistics


@dataclass(frozen=True, slots=True)
class FeedSnapshot:
    """One feed's current content, as the loader last read it.

    ``fetched_at`` is when the content was last fetched or confirmed unchanged (an HTTP
    304, an unchanged file): the ttl of indicators without their own dates counts from it.
    ``ttl`` None means indicators without an explicit expiry never expire.
    """

    name: str
    confidence: int
    indicators: Sequence[Indicator]
    fetched_at: datetime
    ttl: timedelta | None = None
    type: str = "malicious"

    def expiry_of(self, indicator: Indicator) -> datetime | None:
        """When ``indicator`` stops matching (None: never)."""
        if indicator.expires is not None:
            return indicator.expires
        if self.ttl is None:
            return None
        return (indicator.seen or self.fetched_at) + self.ttl


@dataclass(slots=True)
class FeedStats:
    """What one feed contributed to an index."""

    entries: int = 0
    expired: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Match:
    """One indicator that matches a looked-up value (``intel lookup`` explains with these)."""

    feed: str
    feed_type: str
    type: str
    indicator: str
    confidence: int
    expires: datetime | None
    expired: bool
    note: str | None


# --------------------------------------------------------------------------------------
# Flattening ranges into non-overlapping segments


@dataclass(frozen=True, slots=True)
class Segments:
    """Sorted, non-overlapping inclusive ranges ``[starts[i], ends[i]]``.

    ``entry`` is the winning entry id of each segment, ``reputation`` the combined score
    (0-100) of all feeds covering it. ``starts``/``ends`` are uint32 (IPv4) or ``S16``
    big-endian keys (IPv6); either way ``np.searchsorted`` orders them numerically.
    """

    starts: np.ndarray
    ends: np.ndarray
    entry: np.ndarray  # int64
    reputation: np.ndarray  # int16

    @property
    def nbytes(self) -> int:
        """Memory held by the arrays, in bytes."""
        return int(
            self.starts.nbytes + self.ends.nbytes + self.entry.nbytes + self.reputation.nbytes
        )

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entry ids (-1: none) and reputations (0: none) of ``keys`` (same dtype as starts)."""
        n = keys.shape[0]
        if n == 0 or len(self) == 0:
            return np.full(n, -1, np.int64), np.zeros(n, np.int16)
        at = np.searchsorted(self.starts, keys, side="right").astype(np.int64) - 1
        safe = np.maximum(at, 0)
        hit = (at >= 0) & (keys <= self.ends[safe])
        return np.where(hit, self.entry[safe], -1), np.where(hit, self.reputation[safe], 0).astype(
            np.int16
        )


def _noisy_or(confidences: Iterable[int]) -> int:
    """Combined score of independent sources: 1 - prod(1 - c/100), as 0-100."""
    keep = 1.0
    for conf in confidences:
        keep *= 1.0 - conf / 100.0
    return round(100.0 * (1.0 - keep))


def flatten_ranges(
    lo: np.ndarray,
    hi: np.ndarray,
    rank: np.ndarray,
    entry: np.ndarray,
    confidence: np.ndarray,
    feed: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Split possibly overlapping inclusive ranges into disjoint segments.

    Each output segment carries the entry of highest ``rank`` covering it, and the
    combined reputation (noisy-OR over feeds of each feed's best confidence there).
    Ranges that overlap nothing pass through vectorized; only clusters of overlapping
    ranges are swept in Python (their size is what costs). ``lo``/``hi`` may be uint32 or
    object arrays of Python ints (IPv6); the result keeps their dtype.

    >>> lo, hi = np.array([0, 4, 20], np.uint32), np.array([15, 7, 20], np.uint32)
    >>> s, e, who, rep = flatten_ranges(lo, hi, np.array([1, 2, 1]), np.array([0, 1, 2]),
    ...                                 np.array([50, 80, 50]), np.array([0, 1, 0]))
    >>> list(zip(s.tolist(), e.tolist(), who.tolist(), rep.tolist()))
    [(0, 3, 0, 50), (4, 7, 1, 90), (8, 15, 0, 50), (20, 20, 2, 50)]
    """
    n = lo.shape[0]
    if n == 0:
        return lo[:0], hi[:0], np.zeros(0, np.int64), np.zeros(0, np.int16)
    order = np.lexsort((-rank, lo))
    lo, hi, rank, entry = lo[order], hi[order], rank[order], entry[order]
    confidence, feed = confidence[order], feed[order]
    run_max = np.maximum.accumulate(hi)
    starts_cluster = np.ones(n, dtype=bool)
    starts_cluster[1:] = lo[1:] > run_max[:-1]
    cluster = np.cumsum(starts_cluster) - 1
    sizes = np.bincount(cluster)
    single = sizes[cluster] == 1
    out_lo: list[Any] = [lo[single]]
    out_hi: list[Any] = [hi[single]]
    out_entry: list[Any] = [entry[single].astype(np.int64)]
    out_rep: list[Any] = [confidence[single].astype(np.int16)]
    first = np.flatnonzero(starts_cluster & ~single)
    if first.size:
        seg_lo: list[int] = []
        seg_hi: list[int] = []
        seg_entry: list[int] = []
        seg_rep: list[int] = []
        for start in first.tolist():
            stop = start + int(sizes[cluster[start]])
            _sweep(
                [int(v) for v in lo[start:stop]],
                [int(v) for v in hi[start:stop]],
                rank[start:stop].tolist(),
                entry[start:stop].tolist(),
                confidence[start:stop].tolist(),
                feed[start:stop].tolist(),
                seg_lo, seg_hi, seg_entry, seg_rep,
            )  # fmt: skip
        out_lo.append(np.array(seg_lo, dtype=lo.dtype))
        out_hi.append(np.array(seg_hi, dtype=hi.dtype))
        out_entry.append(np.array(seg_entry, dtype=np.int64))
        out_rep.append(np.array(seg_rep, dtype=np.int16))
    all_lo = np.concatenate(out_lo)
    order = np.argsort(all_lo, kind="stable")
    return (
        all_lo[order],
        np.concatenate(out_hi)[order],
        np.concatenate(out_entry)[order],
        np.concatenate(out_rep)[order],
    )


def _sweep(
    lo: list[int],
    hi: list[int],
    rank: list[int],
    entry: list[int],
    confidence: list[int],
    feed: list[int],
    seg_lo: list[int],
    seg_hi: list[int],
    seg_entry: list[int],
    seg_rep: list[int],
) -> None:
    """Elementary segments of one cluster (``lo`` sorted), appended to the ``seg_*`` lists."""
    bounds = sorted(set(lo) | {h + 1 for h in hi})
    active: list[int] = []
    j, m = 0, len(lo)
    for k in range(len(bounds) - 1):
        at = bounds[k]
        while j < m and lo[j] == at:
            active.append(j)
            j += 1
        active = [x for x in active if hi[x] >= at]
        if not active:
            continue
        best = max(active, key=lambda x: rank[x])
        per_feed: dict[int, int] = {}
        for x in active:
            per_feed[feed[x]] = max(per_feed.get(feed[x], 0), confidence[x])
        rep = _noisy_or(per_feed.values())
        end = bounds[k + 1] - 1
        if (
            seg_entry
            and seg_entry[-1] == entry[best]
            and seg_rep[-1] == rep
            and seg_hi[-1] + 1 == at
        ):
            seg_hi[-1] = end
        else:
            seg_lo.append(at)
            seg_hi.append(end)
            seg_entry.append(entry[best])
            seg_rep.append(rep)


# --------------------------------------------------------------------------------------
# Parsing values


def parse_ips(
    values: pl.Series, *, match_private: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Search keys of address strings: ``(v4, is_v4, v6, is_v6)``.

    ``v4`` is uint32, ``v6`` 16-byte big-endian ``S16``; the masks say which entries hold
    a valid address of each family (and, unless ``match_private``, a globally routed
    one). IPv4-mapped IPv6 counts as IPv4. IPv4 is parsed with Polars expressions, IPv6
    (values with a colon, usually few) one by one: call this on unique values.
    """
    s = values.cast(pl.String)
    n = len(s)
    if n == 0:
        return np.zeros(0, np.uint32), np.zeros(0, bool), np.zeros(0, "S16"), np.zeros(0, bool)
    parts = s.str.strip_chars().str.split_exact(".", 3).struct.unnest()
    number = np.zeros(n, np.uint64)
    dots = (s.str.count_matches(".", literal=True) == 3) & ~s.str.contains("+", literal=True)
    ok = dots.fill_null(False).to_numpy()
    for name in parts.columns:
        octet = parts.get_column(name).cast(pl.UInt16, strict=False)
        ok &= octet.is_not_null().to_numpy()
        octets = octet.fill_null(0).to_numpy().astype(np.uint64)
        ok &= octets <= 255
        number = number * 256 + octets
    v4 = number.astype(np.uint32)
    is_v4 = ok
    v6 = np.zeros(n, dtype="S16")
    is_v6 = np.zeros(n, dtype=bool)
    colon = s.str.contains(":", literal=True).fill_null(False).to_numpy()
    if colon.any():
        where = np.flatnonzero(colon)
        for at, text in zip(where.tolist(), s.gather(where).to_list(), strict=True):
            parsed = _parse_v6(text, match_private)
            if isinstance(parsed, int):
                v4[at], is_v4[at] = parsed, True
            elif parsed is not None:
                v6[at], is_v6[at] = parsed, True
    if not match_private and is_v4.any():
        pos = np.searchsorted(_V4_SPECIAL_LO, v4, side="right").astype(np.int64) - 1
        special = (pos >= 0) & (v4 <= _V4_SPECIAL_HI[np.maximum(pos, 0)])
        is_v4 &= ~special
    return v4, is_v4, v6, is_v6


def _parse_v6(text: str, match_private: bool) -> bytes | int | None:
    raw = text.strip().removeprefix("[").split("]", 1)[0].split("%", 1)[0]
    try:
        packed = socket.inet_pton(socket.AF_INET6, raw)
    except (OSError, ValueError):
        return None
    if packed.startswith(_MAPPED):
        return int.from_bytes(packed[12:], "big")
    if not match_private and not ipaddress.IPv6Address(packed).is_global:
        return None
    return packed


def normalize_urls(values: pl.Series) -> pl.Series:
    """Comparable URLs: scheme and host lower-cased, user info, default port and fragment
    dropped, empty path made ``/``. Values that are not absolute URLs become null.

    >>> normalize_urls(pl.Series(["HTTP://Evil.EXAMPLE:80?a=1#x", "/relative"])).to_list()
    ['http://evil.example/?a=1', None]
    """
    parts = values.cast(pl.String).str.extract_groups(_URL_PARTS).struct.unnest()
    if parts.width < 3:
        return pl.Series(values.name, [None] * len(values), dtype=pl.String)
    frame = parts.rename(dict(zip(parts.columns, ["scheme", "host", "rest"], strict=True)))
    scheme = pl.col("scheme").str.to_lowercase()
    host = pl.col("host").str.to_lowercase().str.strip_chars_end(".")
    host = (
        pl.when((scheme == "http") & host.str.ends_with(":80")).then(host.str.strip_suffix(":80"))
        .when((scheme == "https") & host.str.ends_with(":443")).then(host.str.strip_suffix(":443"))
        .otherwise(host)
    )  # fmt: skip
    rest = (
        pl.when(pl.col("rest").str.starts_with("/"))
        .then(pl.col("rest"))
        .otherwise(pl.lit("/") + pl.col("rest"))
    )
    out = frame.select((scheme + pl.lit("://") + host + rest).alias(values.name or "url"))
    return out.to_series()


def _url_hosts(normalized: pl.Series) -> pl.Series:
    """Host part of normalized URLs (port stripped)."""
    return normalized.str.extract(r"^[a-z][a-z0-9+.\-]*://([^/?#:]+|\[[^\]]+\])", 1)


# --------------------------------------------------------------------------------------
# The index


class IndicatorIndex:
    """Every live indicator of every feed, ready for vectorized batch matching.

    Immutable once built; build a new one to change it. ``entries`` is a frame of the
    indicators that survived expiry (row number = entry id): ``feed``, ``feed_type``,
    ``type``, ``indicator``, ``confidence``, ``expires``, ``note``.
    """

    def __init__(
        self,
        entries: pl.DataFrame,
        v4: Segments,
        v6: Segments,
        domains: pl.DataFrame,
        urls: pl.DataFrame,
        hashes: pl.DataFrame,
        stats: dict[str, FeedStats],
        *,
        snapshots: Sequence[FeedSnapshot] = (),
        built_at: datetime,
        next_expiry: datetime | None = None,
        match_private: bool = False,
    ) -> None:
        self.entries = entries
        self.v4 = v4
        self.v6 = v6
        self.domains = domains  # _key: String, _entry: Int64
        self.urls = urls
        self.hashes = hashes
        self.stats = stats
        self.snapshots = tuple(snapshots)
        self.built_at = built_at
        self.next_expiry = next_expiry
        self.match_private = match_private
        self._confidence = entries.get_column("confidence").to_numpy().astype(np.int16)

    # -- building ----------------------------------------------------------------------

    @classmethod
    def empty(cls, now: datetime | None = None) -> IndicatorIndex:
        """An index that matches nothing."""
        return cls.build([], now=now or datetime.now(UTC))

    @classmethod
    def build(
        cls,
        snapshots: Sequence[FeedSnapshot],
        *,
        now: datetime,
        match_private: bool = False,
    ) -> IndicatorIndex:
        """Index the indicators of ``snapshots`` still valid at ``now`` (feed order breaks ties).

        Cost: one Python pass over the indicators plus a sort; about a second per
        million networks.
        """
        cols: dict[str, list[Any]] = {name: [] for name in _ENTRY_SCHEMA}
        v4_rows: list[tuple[str, int, int, int]] = []  # CIDR, entry, conf, feed
        v6: list[tuple[int, int, int, int, int, int]] = []
        keyed: dict[str, list[tuple[str, int, int]]] = {"domain-name": [], "url": [], "file": []}
        stats: dict[str, FeedStats] = {}
        next_expiry: datetime | None = None
        for feed_no, snap in enumerate(snapshots):
            st = stats.setdefault(snap.name, FeedStats())
            for indicator in snap.indicators:
                expires = snap.expiry_of(indicator)
                if expires is not None and expires <= now:
                    st.expired += 1
                    continue
                if expires is not None and (next_expiry is None or expires < next_expiry):
                    next_expiry = expires
                conf = snap.confidence if indicator.confidence is None else indicator.confidence
                entry = len(cols["feed"])
                cols["feed"].append(snap.name)
                cols["feed_type"].append(snap.type)
                cols["type"].append(indicator.type)
                cols["indicator"].append(indicator.value)
                cols["confidence"].append(conf)
                cols["expires"].append(expires)
                cols["note"].append(indicator.note)
                st.entries += 1
                st.by_type[indicator.type] = st.by_type.get(indicator.type, 0) + 1
                if indicator.type == "ipv4-addr":
                    v4_rows.append((indicator.value, entry, conf, feed_no))
                elif indicator.type == "ipv6-addr":
                    net = ipaddress.ip_network(indicator.value, strict=False)
                    lo, hi = int(net.network_address), int(net.broadcast_address)
                    rank = ((conf * 256 + net.prefixlen) << 32) + (0xFFFFFFFF - entry)
                    v6.append((lo, hi, rank, entry, conf, feed_no))
                else:
                    keyed[indicator.type].append((indicator.value, entry, conf))
        entries = pl.DataFrame(cols, schema=_ENTRY_SCHEMA)
        index = cls(
            entries,
            _v4_segments(v4_rows),
            _segments(v6, wide=True),
            _keyed(keyed["domain-name"], None),
            _keyed(keyed["url"], normalize_urls),
            _keyed(keyed["file"], None),
            stats,
            snapshots=snapshots,
            built_at=now,
            next_expiry=next_expiry,
            match_private=match_private,
        )
        return index

    @property
    def size(self) -> int:
        """Live indicators in the index."""
        return self.entries.height

    @property
    def nbytes(self) -> int:
        """Estimated memory of the index (arrays and frames), in bytes."""
        frames = self.entries, self.domains, self.urls, self.hashes
        return self.v4.nbytes + self.v6.nbytes + sum(int(f.estimated_size()) for f in frames)

    # -- matching ----------------------------------------------------------------------

    def match_ips(self, values: pl.Series) -> tuple[np.ndarray, np.ndarray]:
        """Best entry id (-1: none) and reputation (0-100) of each address string."""
        v4, is_v4, v6, is_v6 = parse_ips(values, match_private=self.match_private)
        entry = np.full(len(values), -1, np.int64)
        rep = np.zeros(len(values), np.int16)
        if is_v4.any():
            entry[is_v4], rep[is_v4] = self.v4.find(v4[is_v4])
        if is_v6.any() and len(self.v6):
            entry[is_v6], rep[is_v6] = self.v6.find(v6[is_v6])
        return entry, rep

    def match_domains(self, values: pl.Series) -> np.ndarray:
        """Best entry id (-1: none) of each host name, matching listed parents too."""
        n = len(values)
        if n == 0 or self.domains.height == 0:
            return np.full(n, -1, np.int64)
        names = values.cast(pl.String).str.strip_chars().str.to_lowercase().str.strip_chars_end(".")
        frame = pl.DataFrame(
            {"_row": np.arange(n, dtype=np.int64), "_labels": names.str.split(".")}
        )
        found = (
            frame.lazy()
            .filter(pl.col("_labels").list.len() > 0)
            .with_columns(pl.int_ranges(0, pl.col("_labels").list.len()).alias("_k"))
            .explode("_k")
            .with_columns(pl.col("_labels").list.slice(pl.col("_k")).list.join(".").alias("_key"))
            .join(self.domains.lazy(), on="_key", how="inner")
            .with_columns(pl.col("_entry").alias("_e"))
            .sort("_row", "_rank", "_k", descending=[False, True, False])
            .group_by("_row", maintain_order=True)
            .first()
            .select("_row", "_e")
            .collect()
        )
        out = np.full(n, -1, np.int64)
        if found.height:
            out[found.get_column("_row").to_numpy()] = found.get_column("_e").to_numpy()
        return out

    def match_urls(self, values: pl.Series) -> np.ndarray:
        """Entry id (-1: none) of each URL string after normalization."""
        return self._match_keyed(normalize_urls(values), self.urls)

    def match_hashes(self, values: pl.Series) -> np.ndarray:
        """Entry id (-1: none) of each hex digest (case-insensitive)."""
        return self._match_keyed(
            values.cast(pl.String).str.strip_chars().str.to_lowercase(), self.hashes
        )

    @staticmethod
    def _match_keyed(keys: pl.Series, table: pl.DataFrame) -> np.ndarray:
        n = len(keys)
        if n == 0 or table.height == 0:
            return np.full(n, -1, np.int64)
        joined = (
            keys.alias("_key")
            .to_frame()
            .join(table.select("_key", "_entry"), on="_key", how="left", maintain_order="left")
        )
        return joined.get_column("_entry").fill_null(-1).to_numpy().astype(np.int64)

    # -- explaining (slow path, for the CLI) ----------------------------------------------

    def explain(self, value: str, *, now: datetime | None = None) -> list[Match]:
        """Every indicator of every feed that matches ``value``, expired ones included.

        One Python pass over all indicators: for ``intel lookup``, not for batches.
        """
        now = now or self.built_at
        text = value.strip()
        addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None
        try:
            addr = ipaddress.ip_address(text.removeprefix("[").split("]", 1)[0].split("%", 1)[0])
        except ValueError:
            addr = None
        domain = normalize_domain(text) if addr is None else None
        url = normalize_urls(pl.Series([text])).item() if "://" in text else None
        if url is not None:
            host = _url_hosts(pl.Series([url])).item()
            domain = normalize_domain(host) if host else None
        digest = text.lower()
        out: list[Match] = []
        for snap in self.snapshots:
            for ind in snap.indicators:
                if ind.type in ("ipv4-addr", "ipv6-addr"):
                    hit = addr is not None and addr in ipaddress.ip_network(ind.value, strict=False)
                elif ind.type == "domain-name":
                    hit = domain is not None and (
                        domain == ind.value or domain.endswith("." + ind.value)
                    )
                elif ind.type == "url":
                    hit = url is not None and normalize_urls(pl.Series([ind.value])).item() == url
                else:
                    hit = digest == ind.value
                if not hit:
                    continue
                expires = snap.expiry_of(ind)
                out.append(
                    Match(
                        feed=snap.name,
                        feed_type=snap.type,
                        type=ind.type,
                        indicator=ind.value,
                        confidence=snap.confidence if ind.confidence is None else ind.confidence,
                        expires=expires,
                        expired=expires is not None and expires <= now,
                        note=ind.note,
                    )
                )
        out.sort(key=lambda m: (m.expired, -m.confidence, m.feed))
        return out


def _v4_segments(rows: list[tuple[str, int, int, int]]) -> Segments:
    """IPv4 networks (CIDR text) parsed and flattened with vectorized NumPy."""
    if not rows:
        return _segments([], wide=False)
    frame = pl.DataFrame(rows, schema=["cidr", "entry", "conf", "feed"], orient="row")
    parts = frame.get_column("cidr").str.split_exact("/", 1).struct.unnest()
    address, prefix = parts.get_column(parts.columns[0]), parts.get_column(parts.columns[1])
    number, ok, _, _ = parse_ips(address, match_private=True)
    plen = prefix.cast(pl.Int64, strict=False).fill_null(32).to_numpy()
    ok &= (plen >= 0) & (plen <= 32)
    host_bits = (32 - plen[ok]).astype(np.uint64)
    mask = (np.uint64(0xFFFFFFFF) << host_bits) & np.uint64(0xFFFFFFFF)
    lo = number[ok].astype(np.uint64) & mask
    hi = lo | (~mask & np.uint64(0xFFFFFFFF))
    entry = frame.get_column("entry").to_numpy()[ok].astype(np.int64)
    conf = frame.get_column("conf").to_numpy()[ok].astype(np.int64)
    rank = ((conf * 256 + plen[ok]) << 32) + (0xFFFFFFFF - entry)
    starts, ends, winner, rep = flatten_ranges(
        lo.astype(np.uint32),
        hi.astype(np.uint32),
        rank,
        entry,
        conf,
        frame.get_column("feed").to_numpy()[ok],
    )
    return Segments(starts, ends, winner, rep)


def _segments(rows: list[tuple[int, int, int, int, int, int]], *, wide: bool) -> Segments:
    if not rows:
        empty = np.zeros(0, "S16" if wide else np.uint32)
        return Segments(empty, empty.copy(), np.zeros(0, np.int64), np.zeros(0, np.int16))
    cols = list(zip(*rows, strict=True))
    if wide:
        lo, hi = np.array(cols[0], dtype=object), np.array(cols[1], dtype=object)
        rank = np.array(cols[2], dtype=object)
    else:
        lo, hi = np.array(cols[0], dtype=np.uint32), np.array(cols[1], dtype=np.uint32)
        rank = np.array(cols[2], dtype=np.int64)
    starts, ends, entry, rep = flatten_ranges(
        lo,
        hi,
        rank,
        np.array(cols[3], np.int64),
        np.array(cols[4], np.int64),
        np.array(cols[5], np.int64),
    )
    if wide:
        starts = np.array([int(v).to_bytes(16, "big") for v in starts], dtype="S16")
        ends = np.array([int(v).to_bytes(16, "big") for v in ends], dtype="S16")
    return Segments(starts, ends, entry, rep)


def _keyed(
    rows: list[tuple[str, int, int]], normalize: Callable[[pl.Series], pl.Series] | None
) -> pl.DataFrame:
    """Key → best entry (highest confidence, then first) for exact-match indicators."""
    frame = pl.DataFrame(
        rows, schema={"_key": pl.String, "_entry": pl.Int64, "_rank": pl.Int64}, orient="row"
    )
    if normalize is not None and frame.height:
        frame = frame.with_columns(normalize(frame.get_column("_key")).alias("_key")).drop_nulls(
            "_key"
        )
    return (
        frame.sort(["_key", "_rank", "_entry"], descending=[False, True, False])
        .unique("_key", keep="first", maintain_order=True)
        .sort("_key")
    )


# --------------------------------------------------------------------------------------
# The enricher


class IntelEnricher:
    """Fills ``threat.indicator.*`` and ``source.reputation`` from the indicator index.

    Each batch is matched on its unique values per column: addresses of
    :data:`IP_FIELDS`, host names of :data:`DOMAIN_FIELDS` (and the hosts of URLs), URLs
    of :data:`URL_FIELDS`. A row gets the match of highest confidence (ties: the earlier
    field); ``source.reputation`` combines the feeds listing its source or client
    address. Values a producer already gave are kept (reputation: the higher one).

    ``index`` is an :class:`IndicatorIndex` or a callable returning the current one (the
    feed loader's, swapped on refresh), read once per batch.
    """

    name = "intel"
    provides = PROVIDES

    def __init__(
        self,
        index: IndicatorIndex | Callable[[], IndicatorIndex],
        *,
        closer: Callable[[], None] | None = None,
        metrics_registry: Any = None,
    ) -> None:
        self._index = index
        self._closer = closer
        self.metrics_registry = metrics_registry  # the feed manager's Prometheus registry

    @classmethod
    def from_settings(cls, settings: Any, *, live: bool = False) -> IntelEnricher:
        """Load the configured feeds (``settings.intel``) and, when ``live``, keep refreshing
        them in a background thread (stopped by :meth:`close`).

        Feeds are loaded once before this returns; one that cannot be loaded is logged and
        counted, never fatal. Only a live enricher writes the feed cache and status into
        the state folder (a replay reads the cache a running service left, writes nothing).
        """
        from shopwatch.enrich.schedule import FeedManager

        manager = FeedManager.from_settings(settings, persist=live)
        manager.refresh()
        if live:
            manager.start()
        return cls(lambda: manager.index, closer=manager.stop, metrics_registry=manager.metrics.registry)

    @property
    def index(self) -> IndicatorIndex:
        """The index in force now."""
        return self._index if isinstance(self._index, IndicatorIndex) else self._index()

    def close(self) -> None:
        """Stop the feed refresh thread, if this enricher started one."""
        if self._closer is not None:
            self._closer()

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with threat-indicator and reputation columns filled where a value matches."""
        batch = _ensure(batch)
        index = self.index
        if batch.height == 0 or index.size == 0:
            return batch
        helpers: list[str] = []
        conf_cols: list[str] = []
        rep_cols: list[str] = []
        out = batch
        confidence = index.entries.get_column("confidence")

        def attach(
            column: str, key: pl.Series, entry: np.ndarray, rep: np.ndarray | None, tag: str
        ) -> None:
            nonlocal out
            ent = pl.Series(f"_e{tag}", entry).replace(-1, None)
            table = pl.DataFrame({f"_k{tag}": key, f"_e{tag}": ent}).with_columns(
                confidence.gather(ent).alias(f"_c{tag}")
            )
            if rep is not None:
                table = table.with_columns(
                    pl.Series(f"_r{tag}", rep).cast(pl.Int64).replace(0, None)
                )
            table = table.filter(pl.col(f"_e{tag}").is_not_null())
            if table.height == 0:
                return
            out = out.join(
                table, left_on=column, right_on=f"_k{tag}", how="left", maintain_order="left"
            )
            helpers.extend(c for c in table.columns if c != f"_k{tag}")
            conf_cols.append(f"_c{tag}")
            if rep is not None and column in REPUTATION_FIELDS:
                rep_cols.append(f"_r{tag}")

        tag = 0
        for column in IP_FIELDS:
            if column not in batch.columns:
                continue
            unique = batch.get_column(column).cast(pl.String).drop_nulls().unique()
            entry, rep = index.match_ips(unique)
            attach(column, unique, entry, rep, str(tag))
            tag += 1
        for column in DOMAIN_FIELDS:
            if column not in batch.columns:
                continue
            unique = batch.get_column(column).cast(pl.String).drop_nulls().unique()
            attach(column, unique, index.match_domains(unique), None, str(tag))
            tag += 1
        for column in URL_FIELDS:
            if column not in batch.columns:
                continue
            unique = batch.get_column(column).cast(pl.String).drop_nulls().unique()
            if unique.len() == 0:
                continue
            entry = index.match_urls(unique)
            hosts = _url_hosts(normalize_urls(unique))
            by_host = index.match_domains(hosts.fill_null(""))
            entry = np.where(entry >= 0, entry, by_host)
            attach(column, unique, entry, None, str(tag))
            tag += 1
        if not conf_cols:
            return out
        best = pl.max_horizontal(conf_cols)
        chosen = pl.coalesce(
            [pl.when(pl.col(c) == best).then(pl.col("_e" + c[2:])) for c in conf_cols]
        ).alias("_best")
        out = out.with_columns(chosen)
        picked = (
            index.entries.select(
                pl.col("feed").alias("_feed"),
                pl.col("type").alias("_type"),
                pl.col("indicator").alias("_indicator"),
                pl.col("confidence").alias("_conf"),
            )
            .with_row_index("_best")
            .with_columns(pl.col("_best").cast(pl.Int64))
        )
        out = out.join(picked, on="_best", how="left", maintain_order="left")
        has_own = pl.col("threat.indicator.feed").is_not_null()
        updates = [
            pl.when(has_own).then(pl.col(target)).otherwise(pl.col(source)).alias(target)
            for target, source in (
                ("threat.indicator.feed", "_feed"),
                ("threat.indicator.type", "_type"),
                ("threat.indicator.matched", "_indicator"),
                ("threat.indicator.confidence", "_conf"),
            )
        ]
        if rep_cols:
            updates.append(
                pl.max_horizontal(pl.col("source.reputation"), *rep_cols)
                .cast(pl.Int64)
                .alias("source.reputation")
            )
        out = out.with_columns(updates)
        return out.drop([*helpers, "_best", "_feed", "_type", "_indicator", "_conf"])


def _ensure(batch: pl.DataFrame) -> pl.DataFrame:
    """Add the provided columns as typed nulls when missing."""
    dtypes = {
        "threat.indicator.feed": pl.String(),
        "threat.indicator.type": pl.String(),
        "threat.indicator.matched": pl.String(),
        "threat.indicator.confidence": pl.Int64(),
        "source.reputation": pl.Int64(),
    }
    missing = [pl.lit(None, dtype=d).alias(n) for n, d in dtypes.items() if n not in batch.columns]
    return batch.with_columns(missing) if missing else batch
