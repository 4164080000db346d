"""``where`` clauses of rule files, compiled to one Polars expression.

A clause maps field names to conditions, all of which must hold:

- a scalar: equality (``event.outcome: failure``);
- a list: membership (``http.response.status_code: [401, 403]``);
- a mapping of operators: ``eq ne in not_in gte gt lte lt exists``, the regular
  expression operators ``regex`` / ``not_regex`` (Rust regex syntax, unanchored; prefix
  ``(?i)`` for case-insensitive matching) and ``in_network`` (an address in one of a list
  of IPv4 or IPv6 networks, however its text is written). Several operators on one field
  all must hold.

A field name may carry modifiers after ``|`` that transform the value first, as in Sigma:
``url.original|decoded`` percent-decodes (twice, so double encoding is seen through, and
``+`` reads as a space) and lower-cases; ``|lower`` only lower-cases; ``|net`` gives an
address's /24 (IPv4) or /48 (IPv6) network, for keys above the single address;
``|injection`` is what libinjection finds in the decoded values
(:mod:`shopwatch.detect.injection`); ``|extension`` is the text after the last ``.`` of a
path's last segment; ``|asset`` reads a URL path as ``asset`` (a style sheet, script,
image or font) or ``page``; ``|text`` reads a number as its decimal text (a Sigma wildcard on ``http.response.status_code``).

``any_of`` (a list of clauses, at least one holds) and ``none_of`` (no listed clause holds)
may appear beside the fields. A null field satisfies no condition except ``exists: false``
and ``ne``/``not_in``/``not_regex``.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable
from typing import Any

import polars as pl

from shopwatch.contract import EVENT_SCHEMA

__all__ = [
    "ASSET_PATH",
    "ConditionError",
    "PatternError",
    "Where",
    "check_where",
    "compile_where",
    "derived_column",
    "derived_name",
    "derived_of",
    "engine_message",
    "fields_of",
    "network_of",
    "percent_decoded",
    "shown",
]

_OPS = {
    "eq",
    "ne",
    "in",
    "not_in",
    "regex",
    "not_regex",
    "gte",
    "gt",
    "lte",
    "lt",
    "exists",
    "in_network",
}


_WORD_BOUNDARY = re.compile(r"(?<!\\)\\b")
_SHOWN = 120


class ConditionError(ValueError):
    """A condition of a ``where`` clause that Polars refuses; ``path`` leads to it in the clause."""

    def __init__(self, message: str, path: tuple[str | int, ...] = ()) -> None:
        self.path = path
        super().__init__(message)


class PatternError(ConditionError):
    """A regex that the engine running it (Polars' Rust regex) cannot compile."""

    def __init__(self, field: str, pattern: str, reason: str, path: tuple[str | int, ...]) -> None:
        self.field = field
        self.pattern = pattern
        self.reason = reason
        super().__init__(
            f"regex {shown(pattern)} for {field!r} is refused by the Polars (Rust) regex engine "
            f"that runs it: {reason}",
            path,
        )


def shown(text: str, limit: int = _SHOWN) -> str:
    """``text`` quoted as written (backslashes kept single), cut to ``limit`` characters.

    >>> print(shown(r"\\d+(?=x)"), shown("a" * 200, 8))
    '\\d+(?=x)' 'aaaaaaaa'… (200 characters)
    """
    cut = text[:limit]
    quoted = f"'{cut}'" if cut.isprintable() else repr(cut)
    return quoted if len(text) <= limit else f"{quoted}… ({len(text)} characters)"


def engine_message(err: BaseException) -> str:
    """The one-line reason in a Polars error (no caret drawing, no expression trailer).

    >>> engine_message(ValueError("regex error: regex parse error:\\n  (a)\\\\1\\n     ^^\\n"
    ...                           "error: backreferences are not supported\\n\\nThis error occurred"))
    'backreferences are not supported'
    """
    text = str(err).split("\n\nThis error occurred", 1)[0].strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error: "):
            return line.removeprefix("error: ")
    first = lines[0] if lines else type(err).__name__
    return first.removeprefix("regex error: ").rstrip(":")


@functools.lru_cache(maxsize=4096)
def _regex_refusal(pattern: str) -> str | None:
    """Why Polars cannot compile ``pattern`` (None when it can); compiled on a one-row frame."""
    try:
        pl.DataFrame({"s": [""]}).select(pl.col("s").str.contains(pattern))
    except pl.exceptions.PolarsError as err:
        return engine_message(err)
    return None


def _check_regex(pattern: Any, field: str, path: tuple[str | int, ...] = ()) -> str:
    """The pattern as it runs (word boundaries made ASCII), checked by the engine that runs it.

    A Unicode ``\b`` makes the regex engine leave its fast automaton on any non-ASCII
    haystack (common in hostile logs), which costs 50x; ASCII boundaries do not. The
    rewritten pattern, inline flags such as ``(?i)`` included, is what Polars compiles here
    and on every batch, so a look-around, a back-reference or a pattern over the compiled
    size limit is refused here, not on every batch.
    """
    if not isinstance(pattern, str):
        raise ConditionError(f"regex for {field!r} must be a string", path)
    running = _WORD_BOUNDARY.sub(lambda _: "(?-u:\\b)", pattern)
    refusal = _regex_refusal(running)
    if refusal is not None:
        raise PatternError(field, pattern, refusal, path)
    return running


_ESCAPES = [f"%{code:02x}" for code in range(0x20, 0x7F)]
_CHARS = [chr(code).lower() for code in range(0x20, 0x7F)]
_MODIFIERS = {"asset", "decoded", "extension", "injection", "lower", "net", "text"}

#: Paths of static page assets, what a browser loads with every page it renders
#: (``|asset`` reads a path as ``asset`` or ``page``).
ASSET_PATH = (
    r"(?i)(\.(css|js|mjs|png|jpe?g|gif|svg|webp|avif|ico|woff2?|ttf|eot|map)$"
    r"|/(static|assets|media|_next|wp-content|wp-includes|skin|pub/static|themes)/)"
)


def _prefix(address: str | None) -> str | None:
    """The /24 (IPv4) or /48 (IPv6) network of an address; None for what is not one."""
    if address is None:
        return None
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{bits}", strict=False))


def per_distinct(expr: pl.Expr, fn: Callable[[Any], Any], dtype: pl.DataType) -> pl.Expr:
    """``fn`` of each value of ``expr`` (as text), called once per distinct value of a batch:
    for what only Python can compute (``ipaddress``, libinjection) over values that repeat."""

    def mapped(values: pl.Series) -> pl.Series:
        unique = values.cast(pl.String).unique()
        mapping = pl.DataFrame(
            {"_a": unique, "_out": pl.Series([fn(v) for v in unique.to_list()], dtype=dtype)}
        )
        keyed = pl.DataFrame({"_a": values.cast(pl.String)}).with_row_index("_i")
        joined = keyed.join(mapping, on="_a", how="left", nulls_equal=True).sort("_i")
        return joined["_out"]

    return expr.map_batches(mapped, return_dtype=dtype)


def network_of(expr: pl.Expr) -> pl.Expr:
    """``|net``: the /24 or /48 network of an address, computed once per distinct address.

    Written with the standard library's ``ipaddress`` rather than string rules: IPv6's
    ``::`` compression and IPv4-mapped forms make a regex wrong. Addresses repeat, so the
    Python step runs on the batch's distinct values only.

    >>> pl.select(network_of(pl.lit("198.51.100.7"))).item()
    '198.51.100.0/24'
    >>> pl.select(network_of(pl.lit("2a0b:f4c2::15"))).item()
    '2a0b:f4c2::/48'
    """

    return per_distinct(expr, _prefix, pl.String())


def _networks(
    value: Any, field: str, path: tuple[str | int, ...]
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    values = value if isinstance(value, list) else [value]
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in values)
    except ValueError as err:
        raise ConditionError(f"in_network on {field!r}: {err}", path) from None


def in_networks(
    expr: pl.Expr, networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> pl.Expr:
    """Whether an address lies in one of ``networks``, by ``ipaddress`` (``::1``,
    ``0:0::1`` and ``::ffff:127.0.0.1``-style forms alike), once per distinct address.

    >>> nets = (ipaddress.ip_network("::1/128"), ipaddress.ip_network("10.0.0.0/8"))
    >>> pl.select(in_networks(pl.lit("0:0:0:0:0:0:0:1"), nets)).item()
    True
    """

    def inside(address: str | None) -> bool:
        if address is None:
            return False
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip.version == n.version and ip in n for n in networks)

    return per_distinct(expr, inside, pl.Boolean()).fill_null(False)


def percent_decoded(expr: pl.Expr) -> pl.Expr:
    """Lower-case, then percent-decode printable ASCII escapes, seeing through ``%25``.

    ``+`` reads as a space and a double-encoded escape (``%2527``) decodes like a single
    one. One lower-casing and one multi-pattern pass: this runs on every URL of a batch.

    >>> pl.select(percent_decoded(pl.lit("%2527%20OR+1%3D1%2bX"))).item()
    "' or 1=1+x"
    """
    lowered = expr.str.to_lowercase().str.replace_all("%25", "%", literal=True)
    return lowered.str.replace_all("+", " ", literal=True).str.replace_many(_ESCAPES, _CHARS)


def derived_name(field: str) -> str:
    """Helper-column name under which the engine precomputes a modified field once a batch."""
    return "_" + field


def derived_column(field: str) -> pl.Expr:
    """The expression for ``field`` with its ``|modifiers`` applied, named by derived_name."""
    name, *mods = field.split("|")
    unknown = set(mods) - _MODIFIERS
    if unknown:
        raise ValueError(
            f"unknown modifier(s) {sorted(unknown)} in {field!r}; known: {sorted(_MODIFIERS)}"
        )
    col = pl.col(name)
    if "text" in mods:
        col = col.cast(pl.String)
    if "asset" in mods:
        return (
            pl.when(col.str.contains(ASSET_PATH))
            .then(pl.lit("asset"))
            .when(col.is_not_null())
            .then(pl.lit("page"))
            .alias(derived_name(field))
        )
    if "injection" in mods:  # libinjection on each decoded value (detect.injection)
        from shopwatch.detect.injection import injection_of

        return injection_of(col).alias(derived_name(field))
    if "extension" in mods:  # of a path's last segment: "/a/setup.EXE" -> "EXE"
        col = col.str.extract(r"\.([^./]*)$", 1)
    if "net" in mods:
        col = network_of(col)
    if "decoded" in mods:
        col = percent_decoded(col)
    elif "lower" in mods:
        col = col.str.to_lowercase()
    return col.alias(derived_name(field))


def _column(field: str, precomputed: bool) -> pl.Expr:
    if "|" not in field:
        return pl.col(field)
    expr = derived_column(field)
    return pl.col(derived_name(field)) if precomputed else expr


def _field_expr(
    field: str, cond: Any, precomputed: bool = False, path: tuple[str | int, ...] = ()
) -> pl.Expr:
    col = _column(field, precomputed)
    if isinstance(cond, list):
        return col.is_in(cond).fill_null(False)
    if not isinstance(cond, dict):
        return col.eq(cond).fill_null(False)
    unknown = set(cond) - _OPS
    if unknown:
        raise ConditionError(
            f"unknown operator(s) {sorted(unknown)} for {field!r}; known: {sorted(_OPS)}",
            (*path, field),
        )
    parts: list[pl.Expr] = []
    for op, value in cond.items():
        if op in ("in", "not_in") and not isinstance(value, list):
            raise ConditionError(
                f"{op} for {field!r} takes a list of values, not {value!r}", (*path, field, op)
            )
        if op == "eq":
            parts.append(col.eq(value).fill_null(False))
        elif op == "ne":
            parts.append(col.ne(value).fill_null(True))
        elif op == "in":
            parts.append(col.is_in(list(value)).fill_null(False))
        elif op == "not_in":
            parts.append(col.is_in(list(value)).not_().fill_null(True))
        elif op == "regex":
            pattern = _check_regex(value, field, (*path, field, op))
            parts.append(col.str.contains(pattern).fill_null(False))
        elif op == "not_regex":
            pattern = _check_regex(value, field, (*path, field, op))
            parts.append(col.str.contains(pattern).not_().fill_null(True))
        elif op == "gte":
            parts.append((col >= value).fill_null(False))
        elif op == "gt":
            parts.append((col > value).fill_null(False))
        elif op == "lte":
            parts.append((col <= value).fill_null(False))
        elif op == "lt":
            parts.append((col < value).fill_null(False))
        elif op == "exists":
            parts.append(col.is_not_null() if value else col.is_null())
        elif op == "in_network":
            parts.append(in_networks(col, _networks(value, field, (*path, field, op))))
    return pl.all_horizontal(parts) if parts else pl.lit(True)


def _sub_clauses(field: str, cond: Any, path: tuple[str | int, ...]) -> list[dict[str, Any]]:
    if not isinstance(cond, list) or not all(isinstance(c, dict) for c in cond):
        raise ConditionError(f"{field} takes a list of clauses (mappings)", (*path, field))
    return cond


def compile_where(
    clause: dict[str, Any] | None,
    *,
    precomputed: bool = False,
    _path: tuple[str | int, ...] = (),
) -> pl.Expr:
    """One boolean expression for ``clause`` (True everywhere when empty).

    With ``precomputed``, modified fields (``url.original|decoded``) are read from the
    helper columns the engine adds once per batch (see :func:`derived_of`). Raises
    :class:`ConditionError` (a ValueError) whose ``path`` leads to the bad condition.

    >>> df = pl.DataFrame({"event.outcome": ["failure", "success", None]})
    >>> df.filter(compile_where({"event.outcome": "failure"})).height
    1
    """
    if not clause:
        return pl.lit(True)
    parts: list[pl.Expr] = []
    for field, cond in clause.items():
        if field in ("any_of", "none_of"):
            subs = [
                compile_where(c, precomputed=precomputed, _path=(*_path, field, i))
                for i, c in enumerate(_sub_clauses(field, cond, _path))
            ]
            either = pl.any_horizontal(subs) if subs else pl.lit(False)
            parts.append(either if field == "any_of" else either.not_())
        else:
            parts.append(_field_expr(field, cond, precomputed, _path))
    return pl.all_horizontal(parts)


def check_where(clause: dict[str, Any] | None) -> None:
    """Run every condition of ``clause`` through Polars once, on a row typed as the contract.

    Catches at load what would otherwise fail on every batch: a regex the Rust engine
    refuses, a regex on a column that is not text, a value compared with a column of
    another type (``http.response.status_code: "404"``). Raises :class:`ConditionError`.

    >>> check_where({"http.response.status_code": {"gte": "400"}})
    Traceback (most recent call last):
    ...
    shopwatch.detect.conditions.ConditionError: condition on 'http.response.status_code' fails in Polars on a column of type Int64: cannot compare string with numeric type (i64)
    """
    compile_where(clause)
    _probe(clause or {}, ())


def _probe(clause: dict[str, Any], path: tuple[str | int, ...]) -> None:
    for field, cond in clause.items():
        if field in ("any_of", "none_of"):
            for i, sub in enumerate(cond):
                _probe(sub, (*path, field, i))
            continue
        name = field.split("|", 1)[0]
        dtype = EVENT_SCHEMA.get(name, pl.String())
        row = pl.DataFrame({name: pl.Series([None], dtype=dtype)})
        try:
            row.select(_field_expr(field, cond, path=path))
        except pl.exceptions.PolarsError as err:
            raise ConditionError(
                f"condition on {field!r} fails in Polars on a column of type {dtype}: "
                f"{engine_message(err)}",
                (*path, field),
            ) from err


def _named_fields(clause: dict[str, Any] | None) -> set[str]:
    """Every field name a clause mentions, modifiers included (``url.original|decoded``)."""
    out: set[str] = set()
    for field, cond in (clause or {}).items():
        if field in ("any_of", "none_of"):
            for sub in cond:
                out |= _named_fields(sub)
        else:
            out.add(field)
    return out


def derived_of(clause: dict[str, Any] | None) -> set[str]:
    """The modified fields (``name|modifier``) a clause reads."""
    return {f for f in _named_fields(clause) if "|" in f}


def fields_of(clause: dict[str, Any] | None) -> set[str]:
    """Every contract field a clause reads (for a detector's ``needs``)."""
    return {f.split("|", 1)[0] for f in _named_fields(clause)}


class Where:
    """A rule's ``where`` clause compiled once, picked per batch by what the batch carries.

    :meth:`for_batch` is ``None`` when the batch lacks a field the clause reads (nothing
    can match), the expression over the engine's precomputed helper columns when they are
    all there, else the expression that derives them itself.
    """

    def __init__(self, clause: dict[str, Any] | None) -> None:
        self.fields = frozenset(fields_of(clause))
        self.derived = frozenset(derived_of(clause))
        self._full = compile_where(clause)
        self._fast = compile_where(clause, precomputed=True)

    def for_batch(self, columns: Iterable[str]) -> pl.Expr | None:
        """The expression to filter a batch with these columns by (None: no row can match)."""
        have = set(columns)
        if self.fields - have:
            return None
        if all(derived_name(f) in have for f in self.derived):
            return self._fast
        return self._full
