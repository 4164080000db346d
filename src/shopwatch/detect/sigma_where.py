"""A Sigma rule's detection (its parsed condition tree) as one ``where`` clause.

pySigma parses the selections and the condition (``selection and not 1 of filter_*``)
into a tree of AND / OR / NOT nodes whose leaves are a field and one typed value, the
field modifiers already applied (``|contains`` has put wildcards around the string,
``|base64`` has encoded it, ``|all`` has AND-linked the values). This module writes that
tree in our clause language (:mod:`shopwatch.detect.conditions`): AND is one mapping,
OR is ``any_of``, NOT is ``none_of``.

Values follow Sigma's semantics: strings match case-insensitively (``|lower`` for plain
equality, ``(?i)`` for wildcards) unless ``|cased``; ``*`` and ``?`` are wildcards; a
``|re`` pattern is case-sensitive unless ``|i``; ``null`` is a missing field. What has no
faithful counterpart (field references, placeholders, timestamp parts) is
refused with :class:`Unsupported`, never approximated.
"""

from __future__ import annotations

from typing import Any

import polars as pl
from sigma.conditions import (
    ConditionAND,
    ConditionFieldEqualsValueExpression,
    ConditionIdentifier,
    ConditionItem,
    ConditionNOT,
    ConditionOR,
    ConditionValueExpression,
)
from sigma.types import (
    CompareOperators,
    SigmaBool,
    SigmaCasedString,
    SigmaCIDRExpression,
    SigmaCompareExpression,
    SigmaExists,
    SigmaExpansion,
    SigmaFieldReference,
    SigmaNull,
    SigmaNumber,
    SigmaRegularExpression,
    SigmaString,
    SigmaTimestampPart,
    SigmaType,
    SpecialChars,
)

from shopwatch.contract import EVENT_SCHEMA

__all__ = ["Node", "Unsupported", "all_of", "any_of", "where_of"]

#: A node of pySigma's parsed condition tree.
Node = ConditionItem | ConditionFieldEqualsValueExpression | ConditionValueExpression | None

_META = frozenset("\\.+*?()|[]{}^$#&-~")
_COMPARE = {
    CompareOperators.GT: "gt",
    CompareOperators.GTE: "gte",
    CompareOperators.LT: "lt",
    CompareOperators.LTE: "lte",
    CompareOperators.NEQ: "ne",
}


class Unsupported(ValueError):
    """A Sigma construct with no faithful counterpart; ``selection`` names where it is."""

    def __init__(self, message: str, selection: str | None = None) -> None:
        self.selection = selection
        super().__init__(message)


def _selection(node: Any) -> str | None:
    """The name of the detection (``selection_uri``) a leaf of the tree came from."""
    while node is not None:
        if isinstance(node, ConditionIdentifier):
            return node.identifier
        node = getattr(node, "parent", None)
    return None


def _escape(text: str) -> str:
    """``text`` as a literal in a regex (only the engine's meta characters escaped).

    >>> _escape("/a.php?x=(1)")
    '/a\\\\.php\\\\?x=\\\\(1\\\\)'
    """
    return "".join("\\" + c if c in _META else c for c in text)


def _wildcard_regex(value: SigmaString, cased: bool) -> str:
    """A string with ``*`` / ``?`` as one self-contained regex group, anchored as Sigma is.

    >>> _wildcard_regex(SigmaString("*/etc/passwd*"), False), _wildcard_regex(SigmaString("GET?"), True)
    ('(?is:/etc/passwd)', '(?s:^GET.$)')
    """
    parts: list[str | SpecialChars] = []
    for part in value.iter_parts():
        if isinstance(part, str):
            parts.append(_escape(part))
        elif isinstance(part, SpecialChars):
            parts.append(part)
        else:
            raise Unsupported(
                f"placeholder %{part.name}% (the expand modifier) is not supported: no value lists"
            )
    anywhere_before = bool(parts) and parts[0] == SpecialChars.WILDCARD_MULTI
    anywhere_after = bool(parts) and parts[-1] == SpecialChars.WILDCARD_MULTI
    if anywhere_before:
        parts = parts[1:]
    if anywhere_after and parts:
        parts = parts[:-1]
    body = "".join(
        p if isinstance(p, str) else ".*" if p == SpecialChars.WILDCARD_MULTI else "."
        for p in parts
    )
    head = "" if anywhere_before else "^"
    tail = "" if anywhere_after else "$"
    return f"(?{'' if cased else 'i'}s:{head}{body}{tail})"


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric()


def _string(field: str, dtype: pl.DataType, value: SigmaString) -> dict[str, Any]:
    cased = isinstance(value, SigmaCasedString)
    if value.contains_special() or value.contains_placeholder():
        if _is_numeric(dtype):  # matched against the number's text, as a SIEM would
            return {f"{field}|text": {"regex": _wildcard_regex(value, cased)}}
        if dtype != pl.String():
            raise Unsupported(
                f"a wildcard value {value.to_plain()!r} on {field!r} ({dtype}) is not supported"
            )
        return {field: {"regex": _wildcard_regex(value, cased)}}
    text = value.to_plain(regex=True)
    if _is_numeric(dtype):
        try:
            number: int | float = int(text) if dtype.is_integer() else float(text)
        except ValueError:
            raise Unsupported(f"value {text!r} is not a number, and {field!r} is {dtype}") from None
        return {field: number}
    if dtype == pl.Boolean():
        if text.lower() not in ("true", "false"):
            raise Unsupported(f"value {text!r} is not true or false, and {field!r} is Boolean")
        return {field: text.lower() == "true"}
    if cased or text.lower() == text.upper():
        return {field: text}
    return {f"{field}|lower": text.lower()}


def _regex(field: str, dtype: pl.DataType, value: SigmaRegularExpression) -> dict[str, Any]:
    if dtype != pl.String():
        raise Unsupported(f"a regular expression on {field!r} ({dtype}) is not supported")
    flags = "".join(sorted(SigmaRegularExpression.sigma_to_re_flag[f] for f in value.flags))
    return {field: {"regex": f"(?{flags}:{value.regexp.to_plain(regex=True)})"}}


def _network(field: str, dtype: pl.DataType, value: SigmaCIDRExpression) -> dict[str, Any]:
    if dtype != pl.String():
        raise Unsupported(f"a network ({value.cidr}) on {field!r} ({dtype}) is not supported")
    # Compared as addresses, not as text: "::1" and "0:0::1", "::ffff:10.0.0.9" and
    # "10.0.0.9" are one address each (a pattern over the text would miss some forms).
    return {field: {"in_network": [str(value.network)]}}


def _leaf(field: str, value: SigmaType) -> dict[str, Any]:
    """One ``field = value`` leaf of the tree as a clause."""
    base, *mods = field.split("|")
    # A pipeline may map a Sigma field onto a modified one of ours (url.path|extension).
    dtype = EVENT_SCHEMA.get(field) if not mods else pl.String() if base in EVENT_SCHEMA else None
    if dtype is None:
        raise Unsupported(
            f"field {field!r} is not in the event contract and the processing pipeline "
            "does not map it from this rule's log source"
        )
    if isinstance(value, SigmaExpansion):  # base64offset, windash: any of the variants
        return any_of([_leaf(field, v) for v in value.values])
    if isinstance(value, SigmaString):
        return _string(field, dtype, value)
    if isinstance(value, SigmaTimestampPart):
        raise Unsupported(f"timestamp part modifiers (on {field!r}) are not supported")
    if isinstance(value, SigmaNumber):
        if dtype == pl.String():
            return {field: str(value.number)}
        if not _is_numeric(dtype):
            raise Unsupported(f"number {value.number} for {field!r} ({dtype}) is not supported")
        return {field: value.number}
    if isinstance(value, SigmaBool):
        if dtype == pl.Boolean():
            return {field: value.boolean}
        return {f"{field}|lower": str(value.boolean).lower()}
    if isinstance(value, SigmaNull):
        return {field: {"exists": False}}
    if isinstance(value, SigmaExists):
        return {field: {"exists": value.exists}}
    if isinstance(value, SigmaRegularExpression):
        return _regex(field, dtype, value)
    if isinstance(value, SigmaCIDRExpression):
        return _network(field, dtype, value)
    if isinstance(value, SigmaCompareExpression):
        if not _is_numeric(dtype):
            raise Unsupported(f"a numeric comparison on {field!r} ({dtype}) is not supported")
        return {field: {_COMPARE[value.op]: value.number.number}}
    if isinstance(value, SigmaFieldReference):
        raise Unsupported(
            f"field references (|fieldref, {field!r} to {value.field!r}) are not supported"
        )
    raise Unsupported(f"a value of type {type(value).__name__} (on {field!r}) is not supported")


def all_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """One clause that holds when every one of ``clauses`` holds (AND).

    Clauses on different keys share one mapping; ``none_of`` lists join (not a and not b);
    a clause whose key is taken nests in a one-item ``any_of``.

    >>> all_of([{"a": 1}, {"b": 2}, {"a": {"ne": 3}}])
    {'a': 1, 'b': 2, 'any_of': [{'a': {'ne': 3}}]}
    """
    out: dict[str, Any] = {}
    rest: list[dict[str, Any]] = []
    for clause in clauses:
        if not clause:
            continue
        if (
            "none_of" in out
            and "none_of" in clause
            and not (out.keys() & clause.keys()) - {"none_of"}
        ):
            out = {**out, **clause, "none_of": [*out["none_of"], *clause["none_of"]]}
        elif out.keys() & clause.keys():
            rest.append(clause)
        else:
            out.update(clause)
    if not rest:
        return out
    tail = all_of(rest)
    if "any_of" not in out:
        return {**out, "any_of": [tail]}
    if "any_of" not in tail:
        return {**tail, "any_of": [out]}
    return {"any_of": [out], "none_of": [{"none_of": [tail]}]}


def _shape(clause: dict[str, Any]) -> tuple[str, str] | None:
    """How a one-field clause folds with others on its field: ``regex``, ``in`` or not at all."""
    if len(clause) != 1:
        return None
    ((field, cond),) = clause.items()
    if field in ("any_of", "none_of"):
        return None
    if isinstance(cond, dict):
        return (field, "regex") if cond.keys() == {"regex"} else None
    return (field, "in")


def _merged(clauses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OR-ed clauses, the alternatives on one field folded: regexes into one, values into a list."""
    out: list[dict[str, Any]] = []
    slot: dict[tuple[str, str], int] = {}
    for clause in clauses:
        shape = _shape(clause)
        if shape is None:
            out.append(clause)
            continue
        if shape not in slot:
            slot[shape] = len(out)
            out.append(clause)
            continue
        field, how = shape
        held, cond = out[slot[shape]][field], clause[field]
        if how == "regex":
            out[slot[shape]] = {field: {"regex": f"{held['regex']}|{cond['regex']}"}}
        else:
            values = held if isinstance(held, list) else [held]
            more = cond if isinstance(cond, list) else [cond]
            out[slot[shape]] = {field: [*values, *(v for v in more if v not in values)]}
    return out


def any_of(clauses: list[dict[str, Any]]) -> dict[str, Any]:
    """One clause that holds when at least one of ``clauses`` holds (OR).

    >>> any_of([{"f|lower": "get"}, {"f|lower": "post"}])
    {'f|lower': ['get', 'post']}
    >>> any_of([{"u": {"regex": "(?is:a)"}}, {"u": {"regex": "(?is:b)"}}])
    {'u': {'regex': '(?is:a)|(?is:b)'}}
    """
    flat: list[dict[str, Any]] = []
    for clause in clauses:
        if not clause:
            return {}  # an empty clause always holds
        if clause.keys() == {"any_of"}:
            flat.extend(clause["any_of"])
        else:
            flat.append(clause)
    merged = _merged(flat)
    return merged[0] if len(merged) == 1 else {"any_of": merged}


def _none_of(clause: dict[str, Any]) -> dict[str, Any]:
    if clause.keys() == {"none_of"} and len(clause["none_of"]) == 1:
        inner: dict[str, Any] = clause["none_of"][0]
        return inner  # not not x
    if clause.keys() == {"any_of"}:
        return {"none_of": list(clause["any_of"])}
    return {"none_of": [clause]}


def where_of(node: Node) -> dict[str, Any]:
    """The ``where`` clause of one parsed Sigma condition."""
    if isinstance(node, ConditionAND):
        return all_of([where_of(arg) for arg in node.args])
    if isinstance(node, ConditionOR):
        return any_of([where_of(arg) for arg in node.args])
    if isinstance(node, ConditionNOT):
        return _none_of(where_of(node.args[0]))
    if isinstance(node, ConditionFieldEqualsValueExpression):
        try:
            return _leaf(node.field, node.value)
        except Unsupported as err:
            raise Unsupported(str(err), err.selection or _selection(node)) from None
    if isinstance(node, ConditionValueExpression):
        raise Unsupported(
            "keyword search (a value without a field) is not supported for this rule's log "
            "source: the processing pipeline names no fields to search",
            _selection(node),
        )
    raise Unsupported(f"condition element {type(node).__name__} is not supported")
