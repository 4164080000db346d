"""What a feed parser returns: indicators, the lines it refused, the patterns it skipped.

A feed is read whole (feeds are small next to event streams): a parser takes the feed's
text and returns :class:`FeedContent`. Bad lines are data, never exceptions: each is a
:class:`FeedReject` with a line number and a reason from :data:`REJECT_REASONS`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from shopwatch.errors import ShopwatchError

__all__ = [
    "INDICATOR_TYPES",
    "REJECT_REASONS",
    "FeedContent",
    "FeedFetchError",
    "FeedReject",
    "Indicator",
    "IndicatorType",
    "classify",
    "normalize_domain",
    "parse_time",
]

#: ``threat.indicator.type`` values (ECS uses STIX cyber-observable names).
IndicatorType = Literal["ipv4-addr", "ipv6-addr", "domain-name", "url", "file"]
INDICATOR_TYPES: Final[tuple[str, ...]] = ("ipv4-addr", "ipv6-addr", "domain-name", "url", "file")

#: Why a feed line or object was refused (small fixed set: a metric label).
REJECT_REASONS: Final[tuple[str, ...]] = (
    "bad_value",
    "bad_row",
    "bad_json",
    "unsupported_pattern",
    "unsupported_type",
)

_DOMAIN = re.compile(
    r"^(?=.{1,253}$)(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9])?\.)+[a-z][a-z0-9-]{0,62}$"
)
_HASH_LENGTHS: Final = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclass(frozen=True, slots=True)
class Indicator:
    """One indicator as a feed states it.

    ``value`` is normalized: a network in CIDR notation (a single address is a /32 or
    /128), a lower-case domain without trailing dot, a URL as given (normalized when the
    store is built), or a lower-case hex digest. ``confidence`` overrides the feed's own
    when the feed gives one per indicator; ``expires`` is an explicit end of validity
    (STIX ``valid_until``); ``seen`` is when the feed last saw it active, from which the
    feed's ttl counts (else from when the feed was fetched).
    """

    type: IndicatorType
    value: str
    confidence: int | None = None
    expires: datetime | None = None
    seen: datetime | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class FeedReject:
    """A line (or object) of a feed that could not be used."""

    line_no: int
    raw: str
    reason: str


@dataclass(slots=True)
class FeedContent:
    """Everything one read of a feed gave."""

    indicators: list[Indicator] = field(default_factory=list)
    rejects: list[FeedReject] = field(default_factory=list)

    def reject(self, line_no: int, raw: str, reason: str) -> None:
        """Record a refused line (``raw`` is cut to 512 characters)."""
        self.rejects.append(FeedReject(line_no, raw[:512], reason))

    def extend(self, other: FeedContent) -> None:
        """Append another read's indicators and rejects (MISP events, TAXII pages)."""
        self.indicators.extend(other.indicators)
        self.rejects.extend(other.rejects)


def normalize_domain(text: str) -> str | None:
    """A lower-case domain name without trailing dot, or None when ``text`` is not one.

    >>> normalize_domain("WWW.Example.COM.")
    'www.example.com'
    >>> normalize_domain("1.2.3.4") is None
    True
    """
    value = text.strip().lower().rstrip(".")
    if value.startswith("*."):
        value = value[2:]
    try:
        value = value.encode("idna").decode("ascii") if not value.isascii() else value
    except UnicodeError:
        return None
    return value if _DOMAIN.match(value) else None


def classify(text: str, *, hint: str | None = None) -> Indicator | None:
    """An indicator from a bare value: IP, CIDR, URL, domain or hash (None if none fits).

    ``hint`` names the expected kind (``ip``, ``domain``, ``url``, ``hash``) to refuse
    values of another kind.

    >>> classify("1.10.16.0/20")
    Indicator(type='ipv4-addr', value='1.10.16.0/20', confidence=None, expires=None, seen=None, note=None)
    >>> classify("evil.example").type
    'domain-name'
    """
    value = text.strip()
    if not value:
        return None
    if hint in (None, "ip"):
        net = _network(value)
        if net is not None:
            kind: IndicatorType = "ipv4-addr" if net.version == 4 else "ipv6-addr"
            return Indicator(kind, str(net))
        if hint == "ip":
            return None
    if hint in (None, "url") and "://" in value:
        return Indicator("url", value)
    if hint == "url":
        return None
    lowered = value.lower()
    if hint in (None, "hash") and len(lowered) in _HASH_LENGTHS and _HEX.match(lowered):
        return Indicator("file", lowered, note=_HASH_LENGTHS[len(lowered)])
    if hint == "hash":
        return None
    domain = normalize_domain(value)
    return Indicator("domain-name", domain) if domain else None


def _network(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    """The network of an address or CIDR (host bits cleared), or None."""
    if not value or not (value[0].isdigit() or value[0] in ":abcdefABCDEF"):
        return None
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        return None


def parse_time(text: str | int | float | None) -> datetime | None:
    """A UTC datetime from RFC 3339 / ``YYYY-MM-DD[ HH:MM:SS]`` / epoch seconds, or None.

    >>> parse_time("2024-04-01")
    datetime.datetime(2024, 4, 1, 0, 0, tzinfo=datetime.timezone.utc)
    """
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) or (isinstance(text, str) and text.strip().isdigit()):
        try:
            return datetime.fromtimestamp(float(text), UTC)
        except (OverflowError, OSError, ValueError):
            return None
    value = text.strip().replace("Z", "+00:00")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


class FeedFetchError(ShopwatchError):
    """Raised inside the feed loader when a feed cannot be fetched or read as a whole.

    ``reason`` is one of a small fixed set (a metric label): ``missing``, ``unreachable``,
    ``timeout``, ``http_status``, ``malformed``, ``too_large``.
    """

    def __init__(self, reason: str, message: str) -> None:
        self.reason = reason
        super().__init__(message)
