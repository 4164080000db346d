"""One multi-pattern pass in front of many signature rules.

Most signatures (SigmaHQ's above all) can only match a request that contains one of a few
literal strings: ``/etc/passwd``, ``<script``, ``${jndi:``. :func:`literal_gate` reads a
rule's ``where`` clause and, when it can prove it, returns such a *gate*: per field, the
literals of which at least one must occur (case-insensitively) for the clause to hold. The
engine then scans each gated field once per batch for the union of every gated rule's
literals (Polars' ``str.contains_any``, an Aho-Corasick automaton) and gives the gated
rules only the rows that hit (:func:`candidates`); each rule still applies its whole
clause to those rows, so what it matches is unchanged, only cheaper to find.

The gate is a necessary condition, never an approximation: a clause whose every branch
cannot be proven to need a literal (a ``not``, a comparison, a regex with classes or
repetition) gets no gate and runs on the whole batch. The automaton folds ASCII case only,
so a rule with a non-ASCII literal gets no gate, and a row with any non-ASCII character
in a gated field is always a candidate: Unicode case folding (``K``, U+212A, is ``k`` to a
``(?i)`` regex) cannot make a rule miss what it would have matched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from shopwatch.detect.conditions import derived_name

__all__ = ["TEXT_FIELDS", "Gate", "candidates", "gate_fields", "literal_gate"]

#: Per field (or derived helper column), the literals one of which must occur; a key
#: ``=column`` holds whole values instead (an equality: the lower-cased field must be one).
Gate = dict[str, frozenset[str]]
_EQUALS = "="

#: What is not a literal in a regex (outside a class: ``-``, ``&``, ``~`` and ``#`` are).
_META = frozenset("\\.+*?()|[]{}^$")
#: What a backslash makes a literal (Rust regex; ``\<`` and ``\>`` are word boundaries).
_ESCAPED = frozenset("\\.+*?()|[]{}^$#&-~/ ")
#: Modifiers a gate can see through: lower-casing (the pass folds case itself) and
#: percent-decoding (read from the engine's precomputed helper column).
_LOWER = {"lower"}
#: Free-text fields, where a literal is rare: a gate on ``event.dataset`` or the method
#: would pass every row of its kind, so only these are gated.
TEXT_FIELDS = frozenset(
    {
        "url.original",
        "url.path",
        "url.query",
        "url.full",
        "url.domain",
        "user_agent.original",
        "http.request.referrer",
        "http.request.body.content",
        "message",
    }
)


def _column(field: str) -> str | None:
    """The column a literal of ``field`` is looked for in (None: no gate on it)."""
    name, *mods = field.split("|")
    if name not in TEXT_FIELDS:
        return None
    if not mods or set(mods) <= _LOWER:
        return name
    if "decoded" in mods and set(mods) <= {"decoded", "lower"}:
        return derived_name(f"{name}|decoded")
    return None


#: Columns whose values repeat across a batch (a few hundred user agents in a million
#: requests): their literals are looked for in the distinct values only.
_REPEATED = frozenset({"user_agent.original", "http.request.referrer"})


def gate_fields(gate: Gate) -> set[str]:
    """The modified fields (``url.original|decoded``) whose helper columns ``gate`` reads."""
    names = {key.removeprefix(_EQUALS) for key in gate}
    return {f"{name}|decoded" for name in TEXT_FIELDS if derived_name(f"{name}|decoded") in names}


def _split_top(pattern: str) -> list[str] | None:
    """``pattern``'s top-level alternatives (None when its groups do not balance)."""
    parts: list[str] = []
    depth, start, i = 0, 0, 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                return None
        elif c == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    if depth:
        return None
    parts.append(pattern[start:])
    return parts


def _alternative(text: str) -> str | None:
    """The longest literal run an alternative ``(?flags:body)`` or ``body`` must contain."""
    if text.startswith("(?") and text.endswith(")"):
        colon = text.find(":")
        if colon < 0 or not set(text[2:colon]) <= set("is"):
            return None
        text = text[colon + 1 : -1]
    runs: list[str] = [""]
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 >= len(text) or text[i + 1] not in _ESCAPED:
                return None  # \d, \b, \x41, \< (a word boundary in Rust) ...: not a literal
            runs[-1] += text[i + 1]
            i += 2
            continue
        if c == "." and text[i + 1 : i + 2] == "*":
            runs.append("")
            i += 2
            continue
        if c == ".":
            runs.append("")
        elif (c == "^" and i == 0) or (c == "$" and i == len(text) - 1):
            pass
        elif c in _META:
            return None
        else:
            runs[-1] += c
        i += 1
    best = max(runs, key=len)
    return best.lower() if best else None


def _regex(pattern: str) -> frozenset[str] | None:
    alternatives = _split_top(pattern)
    if not alternatives:
        return None
    out: set[str] = set()
    for alternative in alternatives:
        literal = _alternative(alternative)
        if literal is None:
            return None
        out.add(literal)
    return frozenset(out)


def _values(cond: Any) -> frozenset[str] | None:
    values = cond if isinstance(cond, list) else [cond]
    if not values or not all(isinstance(v, str) and v for v in values):
        return None
    return frozenset(v.lower() for v in values)


def _leaf(field: str, cond: Any) -> Gate | None:
    column = _column(field)
    if column is None:
        return None
    if not isinstance(cond, dict):
        found = _values(cond)
        return {_EQUALS + column: found} if found else None
    options: list[Gate] = []
    for op, value in cond.items():
        if op == "regex" and isinstance(value, str):
            found = _regex(value)
            if found:
                options.append({column: found})
        elif op == "eq" or (op == "in" and isinstance(value, list)):
            found = _values(value)
            if found:
                options.append({_EQUALS + column: found})
    return _best(options)


def _score(gate: Gate) -> tuple[int, int]:
    """Prefer a gate of whole values, then the one whose shortest literal is longest, then
    the one with fewer literals."""
    literals = [lit for lits in gate.values() for lit in lits]
    exact = all(column.startswith(_EQUALS) for column in gate)
    return (10**6 if exact else min(len(lit) for lit in literals), -len(literals))


def _best(options: list[Gate]) -> Gate | None:
    return max(options, key=_score) if options else None


def _union(gates: list[Gate]) -> Gate:
    out: dict[str, set[str]] = {}
    for gate in gates:
        for column, lits in gate.items():
            out.setdefault(column, set()).update(lits)
    return {c: frozenset(v) for c, v in out.items()}


def literal_gate(clause: Mapping[str, Any] | None) -> Gate | None:
    """Literals, per column, one of which a row must contain for ``clause`` to hold.

    A mapping is an AND: any one of its conditions' gates will do (the most selective is
    kept). ``any_of`` is an OR: every branch needs a gate, and the gate is their union.
    ``none_of`` proves nothing.

    >>> gate = literal_gate({"event.dataset": "http.access",
    ...     "url.original": {"regex": "(?is:/etc/passwd)|(?is:^/wp-.*\\\\.php$)"}})
    >>> {column: sorted(literals) for column, literals in gate.items()}
    {'url.original': ['/etc/passwd', '/wp-']}
    >>> literal_gate({"any_of": [{"url.original": {"regex": "(?i:a\\\\d)"}}, {"url.query": "x"}]}) is None
    True
    """
    if not clause:
        return None
    options: list[Gate] = []
    for field, cond in clause.items():
        if field == "none_of":
            continue
        if field == "any_of":
            branches = [literal_gate(c) if isinstance(c, dict) else None for c in cond]
            if branches and all(b is not None for b in branches):
                options.append(_union([b for b in branches if b is not None]))
            continue
        gate = _leaf(field, cond)
        if gate is not None:
            options.append(gate)
    gate = _best(options)
    if gate is None or any(not lit.isascii() for lits in gate.values() for lit in lits):
        return None
    return gate


def _hit(key: str, literals: frozenset[str]) -> pl.Expr:
    """Whether a row's column (``key``) holds one of ``literals`` or any non-ASCII text."""
    column = key.removeprefix(_EQUALS)
    col = pl.col(column)
    if key.startswith(_EQUALS):
        found = col.str.to_lowercase().is_in(sorted(literals))
    else:
        found = col.str.contains_any(sorted(literals), ascii_case_insensitive=True)
    return (found | (col.str.len_bytes() != col.str.len_chars())).fill_null(False)


def candidates(batch: pl.DataFrame, gates: Mapping[str, Gate]) -> dict[str, pl.DataFrame]:
    """For each gated rule, the rows of ``batch`` that could match it.

    One pass over each gated column for the union of every rule's literals keeps the few
    rows that hit any; each rule's own literals then pick its rows from those few. A column
    the batch lacks hits nothing: a rule that reads it cannot match either.
    """
    present = set(batch.columns)

    def usable(gate: Gate) -> Gate:
        return {k: v for k, v in gate.items() if k.removeprefix(_EQUALS) in present}

    union = usable(_union(list(gates.values())))
    empty = batch.clear()
    if not union:
        return dict.fromkeys(gates, empty)
    by_column: dict[str, list[pl.Expr]] = {}
    for key, literals in sorted(union.items()):
        by_column.setdefault(key.removeprefix(_EQUALS), []).append(_hit(key, literals))
    first: list[pl.Expr] = []
    for column, hits in by_column.items():
        if column in _REPEATED:  # a few distinct values: scan those, then look rows up
            values = batch.select(pl.col(column).unique().drop_nulls())
            hit_values = values.filter(pl.any_horizontal(hits))[column]
            first.append(pl.col(column).is_in(hit_values.implode()).fill_null(False))
        else:
            first.extend(hits)
    few = batch.filter(pl.any_horizontal(first))
    if few.height == 0:
        return dict.fromkeys(gates, empty)
    own = {rule: usable(gate) for rule, gate in gates.items()}
    masks = few.select(
        [
            pl.any_horizontal([_hit(k, v) for k, v in sorted(gate.items())]).alias(rule)
            for rule, gate in own.items()
            if gate
        ]
    )
    out: dict[str, pl.DataFrame] = {}
    for rule in gates:
        if rule in masks.columns and masks[rule].any():
            out[rule] = few.filter(masks[rule])
        else:
            out[rule] = empty
    return out
