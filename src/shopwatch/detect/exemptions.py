"""Per-field exemptions for web signatures, learned from the shop's own answered requests.

A review that says *"don't drop the table on the stairs"*, a search for *union select fit
jeans*, an address on *O'Connell St* each match a signature somewhere: the text is
free, the customers many. The signature is right everywhere else. So an exemption is a
triple, (rule, endpoint, field), never a rule switched off or a word allowed everywhere
(the whitelists NAXSI's learning mode writes are (URL, argument, rule) triples for the
same reason).

**What a field is.** A query parameter (``query:q``), a form or JSON body field
(``body:text``; a JSON field by the name of the key that holds the string, as the
tokenizer reads it), or the path itself (``path``). The endpoint is the path with its ids
written as ``{n}`` (digits) and ``{id}`` (long hex, UUIDs, long tokens of letters and
digits).

**Learning, without labels.** A request that matched a signature and that the server
answered (status below 400) is attributed to a field when blanking that field's value
alone makes the rule stop matching, and no other field does that: a match that needs two
fields, or that lies where no field is blanked (a header), teaches nothing. Each
(rule, endpoint, field) counts the client networks (IPv4 ``/24``, IPv6 ``/48``) whose
answered requests matched there; a network that matched there more than
``max_hits_per_source`` times is probing, not writing, and stops counting for good
(until forgotten). When ``min_sources`` networks count, the field is exempt from the
rule on that endpoint. Each batch is judged by the exemptions as they stood before it;
what it teaches counts from the next one.

**What an exemption does.** A request reaches the rule with its exempt fields blanked:
when the rule still matches (the payload is also in another field, or in the path), it
fires as before; when it does not, the request is counted as exempted
(:attr:`FieldExemptions.exempted`), not alerted. Nothing else changes: the same text in
another field or on another endpoint still fires, another rule that has no exemption
there still fires, and the request model still scores the field.

What it cannot tell apart: many networks, each sending a payload or two to the same field
of the same endpoint and getting answers, look like many customers. Ten such networks make
a (rule, endpoint, field) exempt; a second signature (the tokenizer, which prose rarely
trips) has to be learned separately. ``learn: false`` keeps the exemptions to those
written in the settings (``fixed``).

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
from collections.abc import Iterable, Sequence
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
_FORM = re.compile(r"^[^=&\s]+=[^&\s]*(&[^=&\s]*=?[^&\s]*)*$")


@dataclass(frozen=True, slots=True)
class Exemption:
    """One exemption written in the settings: ``field`` of ``endpoint`` for ``rules``."""

    endpoint: str
    field: str
    rules: frozenset[str] | None = None  # None: every signature that can be exempted

    def covers(self, rule: str) -> bool:
        return self.rules is None or rule in self.rules


@dataclass(frozen=True, slots=True)
class ExemptionRules:
    """How exemptions are learned (see the module docstring)."""

    learn: bool = True
    min_sources: int = 10
    max_hits_per_source: int = 3
    forget_after: timedelta = timedelta(days=30)
    max_keys: int = 20_000
    fixed: tuple[Exemption, ...] = ()


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


def _parts(query: str) -> list[tuple[str, str, str]]:
    """``(raw name, raw value, decoded name)`` of each ``k=v`` part of a query or form."""
    out = []
    for part in query.split("&"):
        if not part:
            continue
        name, _, value = part.partition("=")
        out.append((name, value, decode_component(name)))
    return out


def _json_names(node: Any, name: str, out: list[str]) -> None:
    if isinstance(node, str):
        out.append(name)
    elif isinstance(node, dict):
        for key, value in node.items():
            _json_names(value, str(key), out)
    elif isinstance(node, list):
        for item in node:
            _json_names(item, name, out)


def _json_blanked(node: Any, name: str, blank: frozenset[str]) -> Any:
    if isinstance(node, str):
        return "" if name in blank else node
    if isinstance(node, dict):
        return {k: _json_blanked(v, str(k), blank) for k, v in node.items()}
    if isinstance(node, list):
        return [_json_blanked(item, name, blank) for item in node]
    return node


def _json(body: str) -> Any:
    if not body.lstrip().startswith(("{", "[")):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def fields_of(target: str, body: str | None) -> list[str]:
    """The fields of a request (``url.original`` and body) an exemption can name.

    >>> fields_of("/search?q=drop+table&page=2", None)
    ['path', 'query:q', 'query:page']
    >>> fields_of("/api/reviews", '{"product": "p1", "text": "5\\' wide", "stars": 5}')
    ['path', 'body:product', 'body:text']
    """
    path, _, query = target.partition("?")
    out = ["path"] if path.strip("/") else []
    out.extend(f"query:{name}" for _, _, name in _parts(query))
    if body:
        tree = _json(body)
        if tree is not None:
            names: list[str] = []
            _json_names(tree, "body", names)
            out.extend(f"body:{n}" for n in names)
        elif _FORM.match(body):
            out.extend(f"body:{name}" for _, _, name in _parts(body))
    return list(dict.fromkeys(out))[:MAX_FIELDS]


def masked(target: str, body: str | None, blank: Iterable[str]) -> tuple[str, str | None]:
    """``url.original`` and body with the values of the fields ``blank`` made empty.

    >>> masked("/search?q=drop+table&page=2", None, ["query:q"])
    ('/search?q=&page=2', None)
    >>> masked("/blog/drop-table", "a=1&b=%27x", ["path", "body:b"])
    ('/', 'a=1&b=')
    """
    blank = frozenset(blank)
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
        if tree is not None:
            body = json.dumps(_json_blanked(tree, "body", body_names), ensure_ascii=False)
        elif _FORM.match(body):
            body = "&".join(
                f"{raw}=" if name in body_names else f"{raw}={value}"
                for raw, value, name in _parts(body)
            )
    return path + sep + query, body


@lru_cache(maxsize=65_536)
def _network(address: str) -> str:
    """A digest of the client's network: IPv4 /24, IPv6 /48 (an unreadable address: itself)."""
    try:
        ip = ipaddress.ip_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
            ip = ip.ipv4_mapped
        prefix = 24 if ip.version == 4 else 48
        text = str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))
    except ValueError:
        text = address
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


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
        """``(rule, endpoint) -> exempt fields`` as the state holds them (cached a batch)."""
        if self._learned is None:
            hits = state.table("hits", _HITS)
            keys = state.table("keys", _KEYS)
            out: dict[tuple[str, str], set[str]] = {}
            if hits.height and keys.height:
                limit = self.rules.max_hits_per_source
                counted = (
                    hits.group_by("_key")
                    .agg((pl.col("_n") <= limit).sum().alias("_sources"))
                    .filter(pl.col("_sources") >= self.rules.min_sources)
                    .join(keys, on="_key")
                )
                for rule, endpoint, field in counted.select("rule", "endpoint", "field").rows():
                    out.setdefault((rule, endpoint), set()).add(field)
            self._learned = {k: frozenset(v) for k, v in out.items()}
        return self._learned

    def _exempt_fields(
        self, rule: str, endpoint: str, learned: dict[tuple[str, str], frozenset[str]]
    ) -> frozenset[str]:
        fields = set(learned.get((rule, endpoint), ()))
        for fixed in self.rules.fixed:
            if fixed.covers(rule) and fixed.endpoint == endpoint:
                fields.add(fixed.field)
        return frozenset(fields)

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
        needs = sorted(set(detector.where.fields) | set(MASKED) & set(hits.columns))
        cols = {
            c: hits[c].to_list() if c in hits.columns else [None] * hits.height
            for c in ("url.original", "http.request.body.content", "http.response.status_code")
        }
        datasets = (
            hits["event.dataset"].to_list()
            if "event.dataset" in hits.columns
            else [None] * hits.height
        )
        sources = (
            hits["source.ip"].to_list() if "source.ip" in hits.columns else [None] * hits.height
        )
        times = hits["@timestamp"].to_list()
        variants: list[tuple[int, str, str | None]] = []  # (row, target, body)
        roles: list[tuple[int, str | None]] = []  # (row, None: all exempt fields | one field)
        endpoints: dict[int, str] = {}
        for i, (target, body, status) in enumerate(
            zip(
                cols["url.original"],
                cols["http.request.body.content"],
                cols["http.response.status_code"],
                strict=True,
            )
        ):
            if not target or datasets[i] not in (None, "http.access"):
                continue
            endpoint = endpoint_of(target.partition("?")[0])
            endpoints[i] = endpoint
            exempt = self._exempt_fields(rule, endpoint, learned)
            if exempt:
                variants.append((i, *masked(target, body, exempt)))
                roles.append((i, None))
            if self.rules.learn and status is not None and int(status) < 400 and sources[i]:
                for field in fields_of(target, body):
                    variants.append((i, *masked(target, body, [field])))
                    roles.append((i, field))
        if not variants:
            return hits
        still = self._matches(detector, hits, needs, variants)
        dropped: set[int] = set()
        responsible: dict[int, list[str]] = {}
        for (i, blanked), matches in zip(roles, still, strict=True):
            if blanked is None:
                if not matches:
                    dropped.add(i)
            elif not matches:
                responsible.setdefault(i, []).append(blanked)
        taught = [
            (
                _key(rule, endpoints[i], fields[0]),
                rule,
                endpoints[i],
                fields[0],
                _network(str(sources[i])),
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
        if dropped:
            self.exempted[rule] += len(dropped)
            keep = pl.Series([i not in dropped for i in range(hits.height)])
            hits = hits.filter(keep)
        return hits

    @staticmethod
    def _matches(
        detector: Any,
        hits: pl.DataFrame,
        needs: Sequence[str],
        variants: list[tuple[int, str, str | None]],
    ) -> list[bool]:
        """Whether the rule matches each variant (a hit row with its target and body replaced)."""
        rows = pl.Series("_row", [v[0] for v in variants], dtype=pl.UInt32)
        base = hits.select([c for c in needs if c in hits.columns])[rows]
        targets = [v[1] for v in variants]
        paths, queries = [], []
        for target in targets:
            path, sep, query = target.partition("?")
            paths.append(path)
            queries.append(query if sep else None)
        replaced = {
            "url.original": pl.Series(targets, dtype=pl.String),
            "url.path": pl.Series(paths, dtype=pl.String),
            "url.query": pl.Series(queries, dtype=pl.String),
            "http.request.body.content": pl.Series([v[2] for v in variants], dtype=pl.String),
        }
        base = base.with_columns(
            [s.alias(name) for name, s in replaced.items() if name in base.columns]
        )
        where = detector.where.for_batch(base.columns)
        if where is None:
            return [False] * len(variants)
        return base.select(where.fill_null(False).alias("_m"))["_m"].to_list()

    def commit(self, state: KeyedState) -> list[dict[str, Any]]:
        """Fold what this batch taught into the state; returns the exemptions it made."""
        before = self.learned(state)
        self._learned = None
        if not self._pending:
            return []
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
        state.put(
            "hits", hits.group_by("_key", "_src").agg(pl.col("_n").sum(), pl.col("_ts").max())
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
