"""Threat-intelligence feed formats: one module per format, one registry of parsers.

Each parser takes a feed's whole text and returns :class:`FeedContent` (indicators plus
the lines it refused). Formats that need more than one document (a MISP feed's
``manifest.json`` and its event files, a TAXII 2.1 collection) are fetched by
:mod:`shopwatch.enrich.schedule`, which hands each document to the parser named here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from shopwatch.enrich.feeds.abusech import parse_abusech_csv
from shopwatch.enrich.feeds.base import (
    INDICATOR_TYPES,
    REJECT_REASONS,
    FeedContent,
    FeedFetchError,
    FeedReject,
    Indicator,
    IndicatorType,
    classify,
    normalize_domain,
    parse_time,
)
from shopwatch.enrich.feeds.misp import parse_misp_event
from shopwatch.enrich.feeds.plain import parse_plain
from shopwatch.enrich.feeds.stix import parse_stix
from shopwatch.enrich.feeds.tor import parse_exit_addresses

__all__ = [
    "FORMATS",
    "INDICATOR_TYPES",
    "REJECT_REASONS",
    "FeedContent",
    "FeedFetchError",
    "FeedReject",
    "Indicator",
    "IndicatorType",
    "classify",
    "normalize_domain",
    "parse_feed",
    "parse_time",
]


def _ip_list(text: str) -> FeedContent:
    return parse_plain(text, only="ip")


#: Parsers by format name (as written in a feed's ``format:``). ``misp`` reads one event
#: document and ``taxii`` reads STIX objects; their multi-document fetching is the
#: scheduler's.
FORMATS: Final[dict[str, Callable[[str], FeedContent]]] = {
    "plain": parse_plain,
    "ipset": _ip_list,
    "netset": _ip_list,
    "spamhaus": _ip_list,
    "abusech_csv": parse_abusech_csv,
    "tor_exit_addresses": parse_exit_addresses,
    "stix2": parse_stix,
    "misp": parse_misp_event,
    "taxii": parse_stix,
}


def parse_feed(fmt: str, text: str) -> FeedContent:
    """Parse ``text`` as feed format ``fmt`` (a key of :data:`FORMATS`).

    Raises KeyError for an unknown format (configs are validated before this is called).
    """
    return FORMATS[fmt](text)
