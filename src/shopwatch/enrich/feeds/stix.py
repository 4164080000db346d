"""STIX 2.1 indicators: bundles, bare object lists and TAXII envelopes.

Only ``indicator`` objects with ``pattern_type: stix`` (the default) are read; other
object types (identities, malware, relationships, ...) are ignored. A pattern is taken
when it is a disjunction (``OR``) of simple comparisons, each ``=`` (or ``ISSUBSET`` for
a CIDR) against a quoted string, on one of these paths:

``ipv4-addr:value``, ``ipv6-addr:value``, ``network-traffic:dst_ref.value`` /
``src_ref.value`` (address or CIDR), ``domain-name:value``, ``url:value``,
``file:hashes.'SHA-256'`` / ``'SHA-1'`` / ``MD5`` / ``'SHA-512'``.

Anything else (``AND``, ``FOLLOWEDBY``, ``WITHIN``/``REPEATS`` qualifiers, ``LIKE``,
``MATCHES``, other objects) is reported as an ``unsupported_pattern`` reject, whose line
number is the object's 1-based position. Revoked indicators are skipped. ``valid_until``
is the indicator's expiry; ``confidence`` (0-100) overrides the feed's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

from shopwatch.enrich.feeds.base import FeedContent, Indicator, classify, parse_time

__all__ = ["parse_pattern", "parse_stix", "stix_objects"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:\\.|[^'\\])*')
      | (?P<path>[a-z0-9-]+:(?:[A-Za-z0-9_-]+|'[^']*'|\.|\[\d+\]|\[\*\])+)
      | (?P<op>!=|<=|>=|=|<|>)
      | (?P<punct>[\[\]()])
      | (?P<word>[A-Za-z_]+|\S)
    )""",
    re.VERBOSE,
)
_HASH_PATH = re.compile(r"^file:hashes\.(?:'([^']+)'|([A-Za-z0-9-]+))$")
_HASHES = {
    "sha-256": "hash",
    "sha256": "hash",
    "sha-1": "hash",
    "sha1": "hash",
    "md5": "hash",
    "sha-512": "hash",
    "sha512": "hash",
}
_PATHS = {
    "ipv4-addr:value": "ip",
    "ipv6-addr:value": "ip",
    "network-traffic:dst_ref.value": "ip",
    "network-traffic:src_ref.value": "ip",
    "domain-name:value": "domain",
    "url:value": "url",
}


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_pattern(pattern: str) -> list[Indicator] | None:
    """The indicators a simple STIX pattern names, or None when it is not simple.

    >>> [i.value for i in parse_pattern("[ipv4-addr:value = '1.2.3.4'] OR [domain-name:value = 'x.example']")]
    ['1.2.3.4/32', 'x.example']
    >>> parse_pattern("[ipv4-addr:value = '1.2.3.4' AND network-traffic:dst_port = 443]") is None
    True
    """
    tokens: list[tuple[str, str]] = []
    at = 0
    text = pattern.strip()
    while at < len(text):
        found = _TOKEN.match(text, at)
        if found is None or found.end() == at:
            return None
        at = found.end()
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
    depth = 0
    for kind, value in tokens:
        if kind == "punct":
            depth += 1 if value in "[(" else -1
            if depth < 0:
                return None
    if depth != 0 or not tokens or tokens[0] != ("punct", "["):
        return None
    out: list[Indicator] = []
    expect_comparison = True
    i = 0
    while i < len(tokens):
        kind, value = tokens[i]
        if kind == "punct":
            i += 1
            continue
        if expect_comparison:
            if kind != "path" or i + 2 >= len(tokens):
                return None
            (op_kind, op), (str_kind, literal) = tokens[i + 1], tokens[i + 2]
            op = op.upper()
            simple = (op_kind == "op" and op == "=") or (op_kind == "word" and op == "ISSUBSET")
            if str_kind != "str" or not simple:
                return None
            found_indicator = _comparison(value, op, _unquote(literal))
            if found_indicator is None:
                return None
            out.append(found_indicator)
            expect_comparison = False
            i += 3
            continue
        if kind == "word" and value.upper() == "OR":
            expect_comparison = True
            i += 1
            continue
        return None
    return out if out and not expect_comparison else None


def _comparison(path: str, op: str, literal: str) -> Indicator | None:
    hint = _PATHS.get(path)
    if hint is None:
        hashed = _HASH_PATH.match(path)
        name = (hashed.group(1) or hashed.group(2)).lower() if hashed else ""
        hint = _HASHES.get(name)
    if hint is None:
        return None
    if op == "ISSUBSET" and hint != "ip":
        return None
    return classify(literal, hint=hint)


def stix_objects(objects: Iterable[Any]) -> FeedContent:
    """Indicators of STIX objects (dicts); see the module docstring for what is read."""
    out = FeedContent()
    for position, obj in enumerate(objects, start=1):
        if not isinstance(obj, dict):
            out.reject(position, repr(obj), "bad_json")
            continue
        if obj.get("type") != "indicator" or obj.get("revoked") is True:
            continue
        pattern = obj.get("pattern")
        raw = f"{obj.get('id', '?')}: {pattern}"
        if obj.get("pattern_type", "stix") != "stix" or not isinstance(pattern, str):
            out.reject(position, raw, "unsupported_pattern")
            continue
        found = parse_pattern(pattern)
        if found is None:
            out.reject(position, raw, "unsupported_pattern")
            continue
        confidence = obj.get("confidence")
        conf = max(0, min(100, int(confidence))) if isinstance(confidence, (int, float)) else None
        expires = (
            parse_time(obj.get("valid_until")) if isinstance(obj.get("valid_until"), str) else None
        )
        note = obj.get("name") if isinstance(obj.get("name"), str) else None
        for item in found:
            out.indicators.append(
                Indicator(
                    item.type, item.value, confidence=conf, expires=expires, note=note or item.note
                )
            )
    return out


def parse_stix(text: str) -> FeedContent:
    """Indicators of a STIX 2.1 bundle, a JSON list of objects, or a TAXII envelope."""
    try:
        data = json.loads(text)
    except ValueError as err:
        out = FeedContent()
        out.reject(getattr(err, "lineno", 0), text[:512], "bad_json")
        return out
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        return stix_objects(data["objects"])
    if isinstance(data, dict) and data.get("type") == "indicator":
        return stix_objects([data])
    if isinstance(data, list):
        return stix_objects(data)
    out = FeedContent()
    out.reject(1, text[:512], "bad_json")
    return out
