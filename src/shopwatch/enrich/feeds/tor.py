"""Tor exit lists in TorDNSEL's ``exit-addresses`` format.

::

    ExitNode 0011BD2485AD45D984EC4159C88FC066E5E3300E
    Published 2026-08-21 19:24:10
    LastStatus 2026-08-22 00:00:00
    ExitAddress 162.247.74.201 2026-08-22 00:03:52

Only ``ExitAddress`` lines give indicators (the address, last seen at the given time,
noted with the relay's fingerprint); the other keywords are known and skipped. A plain
list of exit addresses (FireHOL's ``tor_exits.ipset``) is read by the ``plain`` format.
"""

from __future__ import annotations

from shopwatch.enrich.feeds.base import FeedContent, Indicator, classify, parse_time

__all__ = ["parse_exit_addresses"]

_KNOWN = {"ExitNode", "Published", "LastStatus", "ExitAddress"}


def parse_exit_addresses(text: str) -> FeedContent:
    """One indicator per ``ExitAddress`` line; unknown or broken lines are rejects.

    >>> text = "ExitNode ABC\\nExitAddress 185.220.101.7 2026-08-22 00:03:52\\n"
    >>> [(i.value, i.note, i.seen.isoformat()) for i in parse_exit_addresses(text).indicators]
    [('185.220.101.7/32', 'ABC', '2026-08-22T00:03:52+00:00')]
    """
    out = FeedContent()
    node: str | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts or parts[0].startswith("#"):
            continue
        keyword = parts[0]
        if keyword not in _KNOWN:
            out.reject(line_no, line, "bad_row")
            continue
        if keyword == "ExitNode":
            node = parts[1] if len(parts) > 1 else None
            continue
        if keyword != "ExitAddress":
            continue
        found = classify(parts[1], hint="ip") if len(parts) > 1 else None
        if found is None:
            out.reject(line_no, line, "bad_value")
            continue
        seen = parse_time(" ".join(parts[2:4])) if len(parts) >= 4 else None
        out.indicators.append(Indicator(found.type, found.value, seen=seen, note=node))
    return out
