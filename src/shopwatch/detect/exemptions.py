"""Per-field exemptions for web signatures, learned from the shop's own answered requests.

A review that says *"don't drop the table on the stairs"*, a search for *union select fit
jeans*, an address on *O'Connell St* each match a signature somewhere: the text is
free, the customers many. The signature is right everywhere else. So an exemption is a
triple, (rule, endpoint, field), never a rule switched off or a word allowed everywhere
(the whitelists NAXSI's learning mode writes are (URL, argument, rule) triples for the
same reason).

**What a field is.** A query parameter (``query:q``), a form field or the path to a
string in a JSON body (``body:text``, ``body:order.note``, ``body:lines[].note``), or the
path itself (``path``, written only). The endpoint is the path with its ids written as
``{n}`` (digits) and ``{id}`` (long hex, UUIDs, long tokens of letters and digits).

**Learning, without labels.** A request that matched a rule that learns
(``learn_rules``: the SQL and HTML look-alike rules, which fire on prose; never a scanner
rule) and that the server answered with a 2xx is attributed to a field when blanking that
field's value alone makes the rule stop matching, and no other field does that: a match
that needs two fields, or that lies where no field is blanked (a header), teaches nothing.
Each (rule, endpoint, field) counts the client networks (IPv4 ``/24``, IPv6 ``/48``; what
is no address counts for nothing) whose requests matched there; a network that matched
there more than ``max_hits_per_source`` times is probing, not writing, and stops counting
(until forgotten). When ``min_sources`` networks count (nxtool's default bar for a NAXSI
whitelist: ten peers), the field is exempt from the rule on that endpoint. Each batch is
judged by the exemptions as they stood before it; what it teaches counts from the next one.

**What an exemption does.** A request reaches the rule with its exempt fields blanked:
when the rule still matches (the payload is also in another field, or in the path), it
fires as before; when it does not, the request is counted as exempted
(:attr:`FieldExemptions.exempted`), not alerted. Nothing else changes: the same text in
another field or on another endpoint still fires, another rule that has no exemption
there still fires, and the request model still scores the field. A request that could be
read two ways (a duplicate JSON key, a form inside a JSON string, a ``;`` in a value, a
body nested too deep) is never exempted, and a JSON body is judged as re-written: where
re-writing loses the match, nothing is exempted.

What it cannot tell apart: ten networks, each sending a look-alike or two to the same
field of the same endpoint and getting 2xx answers, look like ten customers. ``never``
revokes an exemption; ``learn: false`` stops every learned one and keeps those written in
the settings (``fixed``).

State (a :class:`~shopwatch.detect.state.KeyedState` the engine snapshots, evicts and
sheds like a detector's): ``hits`` (key digest, network digest, hits, last seen) and
``keys`` (key digest, rule, endpoint, field, last seen). Endpoint templates and field
names are kept as text, to be shown; no value is kept, and a network is kept as a digest.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache
from typing import Any, Final

import polars as pl
import structlog

from shopwatch.contract import TIMESTAMP
from shopwatch.detect.requests import decode_component
from shopwatch.detect.state import KeyedState

log = structlog.get_logger(__name__)

__all__ = [
    "EXEMPT_STATE",
    "Exemption",
    "ExemptionRules",
    "FieldExemptions",
    "endpoint_of",
    "fields_of",
    "masked",
]

#: The id under which the engine keeps the exemptions' state (not a rule id: no dot).
EXEMPT_STATE: Final = "_exemptions"
#: The request fields an exemption can blank; a rule that reads none of them has none.
MASKED: Final = ("url.original", "url.path", "url.query", "http.request.body.content")
#: Categories whose single-request signatures can be exempted.
CATEGORIES: Final = frozenset({"web_attack", "scanner"})
#: Fields of one request that are tried one by one (the rest teach nothing).
MAX_FIELDS: Final = 32

_HITS: Final[dict[str, pl.DataType]] = {
    "_key": pl.String(),
    "_src": pl.String(),
    "_n": pl.Int64(),
    "_ts": TIMESTAMP,
}
_KEYS: Final[dict[str, pl.DataType]] = {
    "_key": pl.String(),
    "rule": pl.String(),
    "endpoint": pl.String(),
    "field": pl.String(),
    "_ts": TIMESTAMP,
}
_DIGITS = re.compile(r"\d+")
_HEX = re.compile(r"[0-9a-fA-F]{12,}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F-]{14,}")
_TOKEN = re.compile(r"(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{16,}")
# Linear: each '&' part is one run of non-'&' characters (no nested repetition to backtrack).
_FORM = re.compile(r"^[^=&\s]+=[^&\s]*(?:&[^&\s]*)*\Z")
# A JSON body an application might read as a form too ('{"a":"&id=1..."}').
_FORM_IN_JSON = re.compile(r"&[^&=\s\"]*=")
#: Longest endpoint template and field name learned (longer ones are an attacker's text).
MAX_ENDPOINT: Final = 256
MAX_NAME: Final = 128
#: Rows of one rule that teach in one batch, and per (endpoint, network) in one batch.
LEARN_ROWS: Final = 200
#: Networks a (rule, endpoint, field) keeps, in multiples of ``min_sources`` (the newest).
NETWORKS_KEPT: Final = 4
#: The rules that learn by default: those that fire on prose (SQL and HTML look-alikes in
#: reviews, addresses, searches). A probe for one flaw (a CVE's path, Log4Shell, an open
#: proxy) is answered by many servers the world over and must learn nothing.
LEARN_RULES: Final = frozenset(
    {
        "web.sqli_probe",
        "web.xss_probe",
        "web.injection_tokenizer",
        "sigma.5513deaf_f49a_46c2_a6c8_3f111b5cb453",  # SQL Injection Strings In URI
        "sigma.65354b83_a2ea_4ea6_8414_3ab38be0d409",  # Cross Site Scripting Strings
    }
)


@dataclass(frozen=True, slots=True)
class Exemption:
    """One exemption written in the settings: ``field`` of ``endpoint`` for ``rules``."""

    endpoint: str
    field: str
    rules: frozenset[str] | None = None  # None: every signature that can be exempted

    def covers(self, rule: str, endpoint: str, field: str | None = None) -> bool:
        return (
            (self.rules is None or rule in self.rules)
            and endpoint_of(self.endpoint) == endpoint
            and (field is None or field == self.field)
        )


@dataclass(frozen=True, slots=True)
class ExemptionRules:
    """How exemptions are learned (see the module docstring)."""

    learn: bool = True
    min_sources: int = 10
    max_hits_per_source: int = 3
    forget_after: timedelta = timedelta(days=30)
    max_keys: int = 20_000
    fixed: tuple[Exemption, ...] = ()
    #: Exemptions never applied, learned or not (a learned one you revoke).
    never: tuple[Exemption, ...] = ()
    #: The rules that learn (None: every web-attack rule); written ones apply to any.
    learn_rules: frozenset[str] | None = LEARN_RULES


@lru_cache(maxsize=65_536)
def endpoint_of(path: str) -> str:
    """The endpoint template of a path: ids written ``{n}`` and ``{id}``.

    >>> endpoint_of("/api/orders/10482/items/5f3a9c2e-1b7d-4e21-9a0b-3c4d5e6f7a8b")
    '/api/orders/{n}/items/{id}'
    >>> endpoint_of("/account/reset/Zk3q9XvB7wLm2Rt8")
    '/account/reset/{id}'
    >>> endpoint_of("/wc/store/v1/cart/remove-item")
    '/wc/store/v1/cart/remove-item'
    """
    out: list[str] = []
    for segment in path.split("/"):
        if _DIGITS.fullmatch(segment):
            out.append("{n}")
        elif _HEX.fullmatch(segment) or _TOKEN.fullmatch(segment):
            out.append("{id}")
        else:
            out.append(segment)
    return "/".join(out)


@lru_cache(maxsize=16_384)
def _parts(query: str) -> tuple[tuple[str, str, str], ...]:
    """``(raw name, raw value, decoded name)`` of each ``k=v`` part of a query or form."""
    out = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.append((name, value, decode_component(name)))
    return tuple(out)


class _Unsafe(ValueError):
    """A body no exemption can be trusted on."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a duplicate key: parsers disagree on which one counts
        raise _Unsafe("duplicate key")
    return out


_NOT_JSON: Final = object()


def _json(body: str) -> Any:
    """The parsed JSON body, or ``_NOT_JSON``; raises :class:`_Unsafe` for a JSON body that
    an application could read otherwise (a duplicate key, a form inside a string) or that
    is nested too deep to walk."""
    if not body.lstrip().startswith(("{", "[")):
        return _NOT_JSON
    try:
        tree = json.loads(body, object_pairs_hook=_pairs)
    except RecursionError as err:
        raise _Unsafe("nested too deep") from err
    except _Unsafe:
        raise
    except ValueError:
        return _NOT_JSON
    if _FORM_IN_JSON.search(body):
        raise _Unsafe("a form inside JSON")
    return tree


def _json_names(node: Any, path: str, out: list[str]) -> None:
    if isinstance(node, str):
        if path:
            out.append(path)
    elif isinstance(node, dict):
        for key, value in node.items():
            _json_names(value, f"{path}.{key}" if path else str(key), out)
    elif isinstance(node, list):
        for item in node:
            _json_names(item, f"{path}[]", out)


def _json_blanked(node: Any, path: str, blank: frozenset[str]) -> Any:
    if isinstance(node, str):
        return "" if path in blank else node
    if isinstance(node, dict):
        return {
            k: _json_blanked(v, f"{path}.{k}" if path else str(k), blank) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_json_blanked(item, f"{path}[]", blank) for item in node]
    return node


def _dumps(tree: Any) -> str:
    return json.dumps(tree, ensure_ascii=True, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class _Shape:
    """How a request's fields read."""

    fields: tuple[str, ...]
    #: The JSON body as it is re-written when a field is blanked (None: not JSON). A match
    #: is only judged where the rule matches this too: re-writing must not lose it.
    canonical: str | None
    #: Fields blanking cannot be trusted on: a ';' in the raw value (some servers split
    #: parameters on it too).
    unsafe: frozenset[str]


@lru_cache(maxsize=8192)
def _shape(target: str, body: str | None) -> _Shape | None:
    """The fields of a request, or None when no exemption can be trusted on its body."""
    path, _, query = target.partition("?")
    fields = ["path"] if path.strip("/") else []
    unsafe: set[str] = set()
    for _, value, name in _parts(query):
        fields.append(f"query:{name}")
        if ";" in value:
            unsafe.add(f"query:{name}")
    canonical = None
    if body:
        try:
            tree = _json(body)
            if tree is not _NOT_JSON:
                names: list[str] = []
                _json_names(tree, "", names)
                fields.extend(f"body:{n}" for n in names)
                canonical = _dumps(tree)
            elif _FORM.match(body):
                for _, value, name in _parts(body):
                    fields.append(f"body:{name}")
                    if ";" in value:
                        unsafe.add(f"body:{name}")
        except (_Unsafe, RecursionError):
            return None
    return _Shape(tuple(dict.fromkeys(fields))[:MAX_FIELDS], canonical, frozenset(unsafe))


def fields_of(target: str, body: str | None) -> list[str]:
    """The fields of a request (``url.original`` and body) an exemption can name.

    >>> fields_of("/search?q=drop+table&page=2", None)
    ['path', 'query:q', 'query:page']
    >>> fields_of("/api/reviews", '{"product": "p1", "text": "5\\' wide", "stars": 5}')
    ['path', 'body:product', 'body:text']
    >>> fields_of("/api/orders", '{"lines": [{"note": "x"}], "a": {"note": "y"}}')
    ['path', 'body:lines[].note', 'body:a.note']
    """
    shape = _shape(target, body)
    return list(shape.fields) if shape is not None else []


def masked(target: str, body: str | None, blank: Iterable[str]) -> tuple[str, str | None]:
    """``url.original`` and body with the values of the fields ``blank`` made empty.

    >>> masked("/search?q=drop+table&page=2", None, ["query:q"])
    ('/search?q=&page=2', None)
    >>> masked("/blog/drop-table", "a=1&b=%27x", ["path", "body:b"])
    ('/', 'a=1&b=')
    """
    return _masked(target, body, frozenset(blank))


@lru_cache(maxsize=16_384)
def _masked(target: str, body: str | None, blank: frozenset[str]) -> tuple[str, str | None]:
    path, sep, query = target.partition("?")
    if "path" in blank:
        path = "/"
    query_names = frozenset(f[6:] for f in blank if f.startswith("query:"))
    if query_names:
        query = "&".join(
            f"{raw}=" if name in query_names else (f"{raw}={value}" if "=" in part else part)
            for part, (raw, value, name) in zip(
                [p for p in query.split("&") if p], _parts(query), strict=True
            )
        )
    body_names = frozenset(f[5:] for f in blank if f.startswith("body:"))
    if body and body_names:
        tree = _json(body)
        if tree is not _NOT_JSON:
            body = _dumps(_json_blanked(tree, "", body_names))
        elif _FORM.match(body):
            body = "&".join(
                f"{raw}=" if name in body_names else f"{raw}={value}"
                for raw, value, name in _parts(body)
            )
    return path + sep + query, body


@lru_cache(maxsize=65_536)
def _network(address: str) -> str | None:
    """A digest of the client's network (IPv4 /24, IPv6 /48); None when it is no address.

    A port (``198.51.100.7:40000``, ``[2001:db8::1]:443``) is not part of it.
    """
    text = address.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    net = str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    return hashlib.blake2b(net.encode(), digest_size=8).hexdigest()


def _key(rule: str, endpoint: str, field: str) -> str:
    return hashlib.blake2b(f"{rule}\0{endpoint}\0{field}".encode(), digest_size=8).hexdigest()


def exemptable(detector: Any) -> bool:
    """Whether ``detector`` is a single-request web signature an exemption can narrow."""
    spec = getattr(detector, "spec", None)
    where = getattr(detector, "where", None)
    return (
        bool(getattr(detector, "single_event", False))
        and spec is not None
        and where is not None
        and getattr(spec, "category", None) in CATEGORIES
        and getattr(spec, "share", None) is None
        and getattr(spec, "baseline", None) is None
        and bool(set(MASKED) & set(where.fields))
    )


class FieldExemptions:
    """Learns and applies (rule, endpoint, field) exemptions for the engine."""

    def __init__(self, rules: ExemptionRules | None = None) -> None:
        self.rules = rules or ExemptionRules()
        #: Requests kept from a rule by an exemption, per rule id.
        self.exempted: Counter[str] = Counter()
        self._learned: dict[tuple[str, str], frozenset[str]] | None = None
        self._pending: list[pl.DataFrame] = []

    def new_state(self) -> KeyedState:
        return KeyedState(("_key",), max_keys=self.rules.max_keys, max_age=self.rules.forget_after)

    # -- per batch ----------------------------------------------------------------

    def learned(self, state: KeyedState) -> dict[tuple[str, str], frozenset[str]]:
        """``(rule, endpoint) -> exempt fields`` learned, as the state holds them (cached a
        batch); none when learning is off (``learn: false`` also stops what was learned)."""
        if self._learned is None:
            out: dict[tuple[str, str], set[str]] = {}
            hits, keys = self._tables(state)
            if self.rules.learn and hits.height and keys.height:
                limit = self.rules.max_hits_per_source
                counted = (
                    hits.group_by("_key")
                    .agg((pl.col("_n") <= limit).sum().alias("_sources"))
                    .filter(pl.col("_sources") >= self.rules.min_sources)
                    .join(keys, on="_key")
                )
                for rule, endpoint, field in counted.select("rule", "endpoint", "field").rows():
                    if not any(n.covers(rule, endpoint, field) for n in self.rules.never):
                        out.setdefault((rule, endpoint), set()).add(field)
            self._learned = {k: frozenset(v) for k, v in out.items()}
        return self._learned

    @staticmethod
    def _tables(state: KeyedState) -> tuple[pl.DataFrame, pl.DataFrame]:
        """The state's tables; one of the wrong shape (an old or broken snapshot) is reset."""
        out = []
        for name, schema in (("hits", _HITS), ("keys", _KEYS)):
            table = state.table(name, schema)
            if table.schema != pl.Schema(schema):
                log.warning("exemptions_state_reset", table=name, columns=table.columns)
                table = pl.DataFrame(schema=schema)
                state.put(name, table)
            out.append(table)
        return out[0], out[1]

    def _exempt_fields(
        self, rule: str, endpoint: str, learned: dict[tuple[str, str], frozenset[str]]
    ) -> frozenset[str]:
        fields = set(learned.get((rule, endpoint), ()))
        for fixed in self.rules.fixed:
            if fixed.covers(rule, endpoint):
                fields.add(fixed.field)
        return frozenset(fields)

    def _learns(self, detector: Any) -> bool:
        """Whether a rule learns exemptions: a web-attack rule the settings let learn."""
        return (
            self.rules.learn
            and detector.spec.category == "web_attack"
            and (self.rules.learn_rules is None or detector.id in self.rules.learn_rules)
        )

    def screen(self, detector: Any, frame: pl.DataFrame, state: KeyedState) -> pl.DataFrame:
        """The rows of ``frame`` the rule matches, less those only exempt fields made match.

        The rule then runs on these rows (its where clause again, on few rows); what they
        teach is held until :meth:`commit`.
        """
        where = detector.where.for_batch(frame.columns)
        if where is None or frame.height == 0 or "url.original" not in frame.columns:
            return frame
        hits = frame.filter(where)
        if hits.height == 0:
            return hits
        rule = detector.id
        learned = self.learned(state)
        learns = self._learns(detector)

        def column(name: str) -> list[Any]:
            return hits[name].to_list() if name in hits.columns else [None] * hits.height

        targets, bodies = column("url.original"), column("http.request.body.content")
        statuses, datasets = column("http.response.status_code"), column("event.dataset")
        sources, times = column("source.ip"), column("@timestamp")
        variants: list[tuple[int, str, str | None, bool]] = []  # row, target, body, path blanked
        roles: list[tuple[int, str | None]] = []  # None: every exempt field; "=": re-written
        endpoints: dict[int, str] = {}
        networks: dict[int, str] = {}
        per_network: Counter[tuple[str, str]] = Counter()
        learning = 0
        for i, target in enumerate(targets):
            if not target or datasets[i] not in (None, "http.access"):
                continue
            body = bodies[i]
            try:
                shape = _shape(target, body)
                if shape is None:
                    continue
                endpoint = endpoint_of(target.partition("?")[0])
                exempt = (
                    self._exempt_fields(rule, endpoint, learned) & set(shape.fields)
                ) - shape.unsafe
                network = _network(str(sources[i])) if sources[i] else None
                teaches = (
                    learns
                    and network is not None
                    and statuses[i] is not None
                    and 200 <= int(statuses[i]) < 300
                    and len(endpoint) <= MAX_ENDPOINT
                    and learning < LEARN_ROWS
                    # more hits than can count from one network teach nothing more
                    and per_network[(endpoint, network)] <= self.rules.max_hits_per_source
                )
                mine: list[tuple[tuple[int, str, str | None, bool], tuple[int, str | None]]] = []
                if exempt:
                    mine.append(((i, *masked(target, body, exempt), "path" in exempt), (i, None)))
                if teaches:
                    for field in shape.fields:
                        if field != "path" and field not in shape.unsafe and len(field) <= MAX_NAME:
                            mine.append(((i, *masked(target, body, [field]), False), (i, field)))
                if mine and shape.canonical is not None:
                    mine.append(((i, target, shape.canonical, False), (i, "=")))
            except Exception as err:  # one odd request costs its own exemption, not the batch's
                log.debug("exemption_row_skipped", rule=rule, error=str(err))
                continue
            if not mine:
                continue
            endpoints[i] = endpoint
            if teaches:
                assert network is not None
                networks[i] = network
                per_network[(endpoint, network)] += 1
                learning += 1
            for variant, role in mine:
                variants.append(variant)
                roles.append(role)
        if not variants:
            return hits
        still = self._matches(detector, hits, variants)
        exempt_gone: set[int] = set()
        kept_rewritten = {i for (i, role), m in zip(roles, still, strict=True) if role == "=" and m}
        rewritten = {i for i, role in roles if role == "="}
        responsible: dict[int, list[str]] = {}
        for (i, blanked), matches in zip(roles, still, strict=True):
            if matches or blanked == "=" or (i in rewritten and i not in kept_rewritten):
                continue  # still matches; or re-writing the body lost the match: judge nothing
            if blanked is None:
                exempt_gone.add(i)
            elif i in networks:
                responsible.setdefault(i, []).append(blanked)
        taught = [
            (
                _key(rule, endpoints[i], fields[0]),
                rule,
                endpoints[i],
                fields[0],
                networks[i],
                times[i],
            )
            for i, fields in responsible.items()
            if len(fields) == 1
        ]
        if taught:
            self._pending.append(
                pl.DataFrame(
                    taught,
                    schema={
                        **{k: pl.String() for k in ("_key", "rule", "endpoint", "field", "_src")},
                        "_ts": TIMESTAMP,
                    },
                    orient="row",
                )
            )
        if exempt_gone:
            self.exempted[rule] += len(exempt_gone)
            hits = hits.filter(pl.Series([i not in exempt_gone for i in range(hits.height)]))
        return hits

    @staticmethod
    def _matches(
        detector: Any, hits: pl.DataFrame, variants: list[tuple[int, str, str | None, bool]]
    ) -> list[bool]:
        """Whether the rule matches each variant: a hit row with its target and body
        replaced (``url.query`` where the query changed, ``url.path`` where it was blanked;
        every other column as the source logged it)."""
        needs = sorted(set(detector.where.fields) | (set(MASKED) & set(hits.columns)))
        rows = pl.Series("_row", [v[0] for v in variants], dtype=pl.UInt32)
        base = hits.select([c for c in needs if c in hits.columns])[rows]
        targets = [v[1] for v in variants]
        originals = hits["url.original"].to_list()
        columns: dict[str, list[Any]] = {
            "url.original": targets,
            "http.request.body.content": [v[2] for v in variants],
        }
        if "url.query" in base.columns:
            logged = base["url.query"].to_list()
            columns["url.query"] = [
                (t.partition("?")[2] or None) if t != originals[v[0]] else q
                for t, v, q in zip(targets, variants, logged, strict=True)
            ]
        if "url.path" in base.columns:
            logged = base["url.path"].to_list()
            columns["url.path"] = [
                "/" if v[3] else p for v, p in zip(variants, logged, strict=True)
            ]
        base = base.with_columns(
            [pl.Series(n, c, dtype=pl.String) for n, c in columns.items() if n in base.columns]
        )
        where = detector.where.for_batch(base.columns)
        if where is None:
            return [False] * len(variants)
        return base.select(where.fill_null(False).alias("_m"))["_m"].to_list()

    def commit(self, state: KeyedState) -> list[dict[str, Any]]:
        """Fold what this batch taught into the state; returns the exemptions it made."""
        if not self._pending:  # most batches: nothing to fold, nothing to re-count
            return []
        before = self.learned(state)
        self._learned = None
        taught = pl.concat(self._pending, how="vertical")
        self._pending = []
        hits = pl.concat(
            [
                state.table("hits", _HITS),
                taught.group_by("_key", "_src").agg(
                    pl.len().cast(pl.Int64).alias("_n"), pl.col("_ts").max()
                ),
            ],
            how="vertical_relaxed",
        )
        # A key keeps its most recent networks only, enough to count and to know probers:
        # a field thousands of customers write in costs as much as one a few dozen do.
        merged = hits.group_by("_key", "_src").agg(pl.col("_n").sum(), pl.col("_ts").max())
        state.put(
            "hits",
            merged.sort(["_key", "_ts", "_src"], descending=[False, True, False])
            .group_by("_key", maintain_order=True)
            .head(NETWORKS_KEPT * self.rules.min_sources),
        )
        keys = pl.concat(
            [state.table("keys", _KEYS), taught.select(list(_KEYS))], how="vertical_relaxed"
        )
        state.put(
            "keys",
            keys.group_by("_key").agg(
                pl.col("rule").first(),
                pl.col("endpoint").first(),
                pl.col("field").first(),
                pl.col("_ts").max(),
            ),
        )
        after = self.learned(state)
        made = [
            {"rule": rule, "endpoint": endpoint, "field": field}
            for (rule, endpoint), fields in sorted(after.items())
            for field in sorted(fields - before.get((rule, endpoint), frozenset()))
        ]
        for item in made:
            log.info("exemption_learned", **item, networks=self.rules.min_sources)
        return made

    def listing(self, state: KeyedState) -> pl.DataFrame:
        """Every (rule, endpoint, field) with its counting networks, probers and state."""
        hits = state.table("hits", _HITS)
        keys = state.table("keys", _KEYS)
        limit = self.rules.max_hits_per_source
        return (
            hits.group_by("_key")
            .agg(
                (pl.col("_n") <= limit).sum().alias("networks"),
                (pl.col("_n") > limit).sum().alias("probers"),
                pl.col("_ts").max().alias("last_seen"),
            )
            .join(keys.drop("_ts"), on="_key")
            .with_columns((pl.col("networks") >= self.rules.min_sources).alias("exempt"))
            .select("rule", "endpoint", "field", "networks", "probers", "exempt", "last_seen")
            .sort("rule", "endpoint", "field")
        )

    def forget_cache(self) -> None:
        self._learned = None
