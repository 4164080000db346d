"""``where`` clauses of rule files, compiled to one Polars expression.

A clause maps field names to conditions, all of which must hold:

- a scalar: equality (``event.outcome: failure``);
- a list: membership (``http.response.status_code: [401, 403]``);
- a mapping of operators: ``eq ne in not_in gte gt lte lt exists`` and the regular
  expression operators ``regex`` / ``not_regex`` (Rust regex syntax, unanchored; prefix
  ``(?i)`` for case-insensitive matching). Several operators on one field all must hold.

A field name may carry modifiers after ``|`` that transform the value first, as in Sigma:
``url.original|decoded`` percent-decodes (twice, so double encoding is seen through, and
``+`` reads as a space) and lower-cases; ``|lower`` only lower-cases.

``any_of`` (a list of clauses, at least one holds) and ``none_of`` (no listed clause holds)
may appear beside the fields. A null field satisfies no condition except ``exists: false``
and ``ne``/``not_in``/``not_regex``.
"""

from __future__ import annotations

import re
from typing import Any

import polars as pl

__all__ = [
    "compile_where",
    "derived_column",
    "derived_name",
    "derived_of",
    "fields_of",
    "percent_decoded",
]

_OPS = {"eq", "ne", "in", "not_in", "regex", "not_regex", "gte", "gt", "lte", "lt", "exists"}


_WORD_BOUNDARY = re.compile(r"(?<!\\)\\b")


def _check_regex(pattern: Any, field: str) -> str:
    """Validate a rule's regex and make its word boundaries ASCII.

    A Unicode ``\b`` makes the regex engine leave its fast automaton on any non-ASCII
    haystack (common in hostile logs), which costs 50x; ASCII boundaries do not.
    """
    if not isinstance(pattern, str):
        raise ValueError(f"regex for {field!r} must be a string")
    try:
        re.compile(pattern.replace("(?i)", ""))
    except re.error as err:
        raise ValueError(f"regex for {field!r} does not compile: {err}") from err
    return _WORD_BOUNDARY.sub(lambda _: "(?-u:\\b)", pattern)


_ESCAPES = [f"%{code:02x}" for code in range(0x20, 0x7F)]
_CHARS = [chr(code).lower() for code in range(0x20, 0x7F)]
_MODIFIERS = {"decoded", "lower"}


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


def _field_expr(field: str, cond: Any, precomputed: bool = False) -> pl.Expr:
    col = _column(field, precomputed)
    if isinstance(cond, list):
        return col.is_in(cond).fill_null(False)
    if not isinstance(cond, dict):
        return col.eq(cond).fill_null(False)
    unknown = set(cond) - _OPS
    if unknown:
        raise ValueError(
            f"unknown operator(s) {sorted(unknown)} for {field!r}; known: {sorted(_OPS)}"
        )
    parts: list[pl.Expr] = []
    for op, value in cond.items():
        if op == "eq":
            parts.append(col.eq(value).fill_null(False))
        elif op == "ne":
            parts.append(col.ne(value).fill_null(True))
        elif op == "in":
            parts.append(col.is_in(list(value)).fill_null(False))
        elif op == "not_in":
            parts.append(col.is_in(list(value)).not_().fill_null(True))
        elif op == "regex":
            parts.append(col.str.contains(_check_regex(value, field)).fill_null(False))
        elif op == "not_regex":
            parts.append(col.str.contains(_check_regex(value, field)).not_().fill_null(True))
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
    return pl.all_horizontal(parts) if parts else pl.lit(True)


def compile_where(clause: dict[str, Any] | None, *, precomputed: bool = False) -> pl.Expr:
    """One boolean expression for ``clause`` (True everywhere when empty).

    With ``precomputed``, modified fields (``url.original|decoded``) are read from the
    helper columns the engine adds once per batch (see :func:`derived_of`).

    >>> df = pl.DataFrame({"event.outcome": ["failure", "success", None]})
    >>> df.filter(compile_where({"event.outcome": "failure"})).height
    1
    """
    if not clause:
        return pl.lit(True)
    parts: list[pl.Expr] = []
    for field, cond in clause.items():
        if field == "any_of":
            parts.append(
                pl.any_horizontal([compile_where(c, precomputed=precomputed) for c in cond])
            )
        elif field == "none_of":
            parts.append(
                pl.any_horizontal([compile_where(c, precomputed=precomputed) for c in cond]).not_()
            )
        else:
            parts.append(_field_expr(field, cond, precomputed))
    return pl.all_horizontal(parts)


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
