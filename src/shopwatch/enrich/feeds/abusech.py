"""abuse.ch CSV exports: Feodo Tracker, URLhaus and ThreatFox.

All three share one layout: a ``#`` comment banner, a CSV header, quoted rows, sometimes
a ``# END n entries`` trailer. Feodo Tracker's header is a plain quoted row
(``"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"``); URLhaus
and ThreatFox put theirs in the last comment line (``# id,dateadded,url,url_status,...``).
The header is found by its column names, so either works.

Columns read (the first present wins): the value from ``dst_ip`` / ``ip_address`` /
``ip`` (Feodo), ``url`` (URLhaus), ``host``, or ``ioc_value`` with ``ioc_type``
(ThreatFox: ``ip:port``, ``domain``, ``url``, ``md5_hash``, ``sha256_hash``); the time an
indicator was last seen from ``last_online`` / ``last_seen_utc`` (else ``first_seen_utc``
/ ``dateadded``); the note from ``malware`` / ``malware_printable`` / ``threat``; a
per-row confidence from ``confidence_level``.
"""

from __future__ import annotations

import csv

from shopwatch.enrich.feeds.base import FeedContent, Indicator, classify, parse_time

__all__ = ["parse_abusech_csv"]

_VALUE_COLUMNS = ("dst_ip", "ip_address", "ip", "url", "host", "ioc_value")
_HINTS = {
    "dst_ip": "ip",
    "ip_address": "ip",
    "ip": "ip",
    "url": "url",
    "host": None,
    "ioc_value": None,
}
_SEEN_COLUMNS = (
    "last_online",
    "last_seen_utc",
    "last_seen",
    "first_seen_utc",
    "dateadded",
    "first_seen",
)
_NOTE_COLUMNS = ("malware", "malware_printable", "threat", "threat_type")
_IOC_HINTS = {"ip:port": "ip", "ip": "ip", "domain": "domain", "url": "url"}


def _header(fields: list[str]) -> list[str] | None:
    names = [f.strip().strip('"').strip().lower() for f in fields]
    return names if any(n in _VALUE_COLUMNS for n in names) else None


def parse_abusech_csv(text: str) -> FeedContent:
    """Indicators of an abuse.ch CSV export; rows that do not fit are rejects.

    >>> sample = '# banner\\n"first_seen_utc","dst_ip","dst_port","c2_status","last_online","malware"\\n'
    >>> sample += '"2024-03-26 23:30:07","213.199.41.33","13721","online","2024-04-04","Pikabot"\\n# END 1 entries'
    >>> [(i.value, i.note, i.seen.date().isoformat()) for i in parse_abusech_csv(sample).indicators]
    [('213.199.41.33/32', 'Pikabot', '2024-04-04')]
    """
    out = FeedContent()
    header: list[str] | None = None
    lines = text.splitlines()
    for line_no, line in enumerate(lines, start=1):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if header is None:
                fields = next(csv.reader([stripped.lstrip("# ")]), [])
                header = _header(fields) if len(fields) > 2 else None
            continue
        row = next(csv.reader([stripped]), [])
        if header is None:
            header = _header(row)
            if header is None:
                out.reject(line_no, line, "bad_row")
            continue
        if _header(row) == header:  # a repeated header row
            continue
        if len(row) != len(header):
            out.reject(line_no, line, "bad_row")
            continue
        record = dict(zip(header, (v.strip() for v in row), strict=True))
        found = _indicator(record)
        if found is None:
            out.reject(line_no, line, "bad_value")
            continue
        out.indicators.append(found)
    return out


def _indicator(record: dict[str, str]) -> Indicator | None:
    column = next((c for c in _VALUE_COLUMNS if record.get(c)), None)
    if column is None:
        return None
    value = record[column]
    hint = _HINTS[column]
    if column == "ioc_value":
        ioc_type = record.get("ioc_type", "").lower()
        hint = "hash" if ioc_type.endswith("_hash") else _IOC_HINTS.get(ioc_type)
        if ioc_type == "ip:port" and value.count(":") == 1:
            value = value.split(":", 1)[0]
    found = classify(value, hint=hint)
    if found is None:
        return None
    seen = next((parse_time(record[c]) for c in _SEEN_COLUMNS if record.get(c)), None)
    note = next((record[c] for c in _NOTE_COLUMNS if record.get(c)), None)
    confidence: int | None = None
    raw_conf = record.get("confidence_level", "")
    if raw_conf.isdigit():
        confidence = max(0, min(100, int(raw_conf)))
    return Indicator(
        found.type, found.value, confidence=confidence, seen=seen, note=note or found.note
    )
