"""MISP feeds: a ``manifest.json`` listing events, each in ``<uuid>.json``, or one event.

An event file is ``{"Event": {..., "Attribute": [...], "Object": [{"Attribute": [...]}]}}``.
Attributes with ``to_ids`` true are read (MISP's "use for detection" flag; set
``ids_only=False`` to read all); deleted ones are skipped. Types read: ``ip-src``,
``ip-dst`` (and their ``|port`` forms), ``domain``, ``hostname``, ``domain|ip``, ``url``,
``md5``, ``sha1``, ``sha256``, ``sha512`` (and ``filename|<hash>``). Other types
(comments, e-mail addresses, ...) are skipped; a value that does not fit its type is a
``bad_value`` reject numbered by the attribute's position in the event.
"""

from __future__ import annotations

import json
import re
from typing import Any

from shopwatch.enrich.feeds.base import FeedContent, Indicator, classify, parse_time

__all__ = ["manifest_events", "parse_misp_event"]

_TYPES: dict[str, str] = {
    "ip-src": "ip",
    "ip-dst": "ip",
    "ip-src|port": "ip",
    "ip-dst|port": "ip",
    "domain": "domain",
    "hostname": "domain",
    "domain|ip": "domain",
    "url": "url",
    "md5": "hash",
    "sha1": "hash",
    "sha256": "hash",
    "sha512": "hash",
    "filename|md5": "hash",
    "filename|sha1": "hash",
    "filename|sha256": "hash",
}


def _is_true(value: Any) -> bool:
    return value is True or value in (1, "1", "true", "True")


_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def manifest_events(text: str, *, rejects: FeedContent | None = None) -> list[str]:
    """Event uuids of a MISP feed ``manifest.json`` (sorted); [] when it is not one.

    A key that is not a uuid (a path, a URL: the manifest would choose what is fetched
    next) is skipped, and recorded in ``rejects`` as ``bad_value`` when given.

    >>> manifest_events('{"5a3f9c1e-1b2d-4e5f-8a9b-0c1d2e3f4a5b": {}, "http://x/": {}}')
    ['5a3f9c1e-1b2d-4e5f-8a9b-0c1d2e3f4a5b']
    """
    try:
        data = json.loads(text)
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    keys = sorted(k for k, v in data.items() if isinstance(v, dict))
    good = [k for k in keys if _UUID.match(k)]
    if rejects is not None:
        for position, key in enumerate(keys, start=1):
            if not _UUID.match(key):
                rejects.reject(position, key, "bad_value")
    return good


def parse_misp_event(text: str, *, ids_only: bool = True) -> FeedContent:
    """Indicators of one MISP event JSON document.

    >>> doc = '{"Event": {"info": "C2", "Attribute": [{"type": "ip-dst", "value": "203.0.113.9", "to_ids": true}]}}'
    >>> [(i.type, i.value, i.note) for i in parse_misp_event(doc).indicators]
    [('ipv4-addr', '203.0.113.9/32', 'C2')]
    """
    out = FeedContent()
    try:
        data = json.loads(text)
    except ValueError as err:
        out.reject(getattr(err, "lineno", 0), text[:512], "bad_json")
        return out
    event = data.get("Event") if isinstance(data, dict) else None
    if not isinstance(event, dict):
        out.reject(1, text[:512], "bad_json")
        return out
    info = event.get("info") if isinstance(event.get("info"), str) else None
    attributes: list[Any] = list(event.get("Attribute") or [])
    for obj in event.get("Object") or []:
        if isinstance(obj, dict):
            attributes.extend(obj.get("Attribute") or [])
    for position, attribute in enumerate(attributes, start=1):
        if not isinstance(attribute, dict):
            out.reject(position, repr(attribute), "bad_json")
            continue
        if _is_true(attribute.get("deleted")) or (
            ids_only and not _is_true(attribute.get("to_ids"))
        ):
            continue
        kind = str(attribute.get("type", ""))
        hint = _TYPES.get(kind)
        if hint is None:
            continue
        value = str(attribute.get("value", ""))
        if "|" in kind:
            left, _, right = value.partition("|")
            value = right if kind.startswith("filename|") else left
        found = classify(value, hint=hint)
        if found is None:
            out.reject(position, f"{kind}: {value}", "bad_value")
            continue
        seen = parse_time(attribute.get("last_seen")) if attribute.get("last_seen") else None
        out.indicators.append(
            Indicator(found.type, found.value, seen=seen, note=info or found.note)
        )
    return out
