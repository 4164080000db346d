"""Plain lists: one indicator per line (FireHOL ``.ipset``/``.netset``, Spamhaus DROP).

Lines starting with ``#`` or ``;`` are comments (FireHOL headers, Spamhaus's
``; Last-Modified`` and ``; EOF``); blank lines are skipped. What follows the value after
``;`` or ``#`` on the same line is kept as the indicator's note (Spamhaus's SBL record
id, ``1.10.16.0/20 ; SBL256894``). Values are typed one by one: IPv4/IPv6 address or
CIDR, URL, domain, or hash; with ``only="ip"`` anything else is refused as ``bad_value``.
"""

from __future__ import annotations

from shopwatch.enrich.feeds.base import FeedContent, Indicator, classify

__all__ = ["parse_plain"]


def parse_plain(text: str, *, only: str | None = None) -> FeedContent:
    """Indicators of a one-per-line list; malformed lines are rejects, never errors.

    >>> content = parse_plain("; Spamhaus DROP\\n1.10.16.0/20 ; SBL256894\\nnot an ip\\n", only="ip")
    >>> [(i.value, i.note) for i in content.indicators], [r.reason for r in content.rejects]
    ([('1.10.16.0/20', 'SBL256894')], ['bad_value'])
    """
    out = FeedContent()
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        cut = len(stripped)
        for mark in (";", " #", "\t#"):
            at = stripped.find(mark)
            if at != -1:
                cut = min(cut, at)
        value = stripped[:cut].strip()
        note = stripped[cut:].lstrip(";#\t ").strip() or None
        if " " in value or "\t" in value:  # "0.0.0.0 evil.example" hosts lines, "1.2.3.4 extra"
            value = value.split()[0]
        found = classify(value, hint=only)
        if found is None:
            out.reject(line_no, line, "bad_value")
            continue
        out.indicators.append(
            found if note is None else Indicator(found.type, found.value, note=note)
        )
    return out
