"""Every branch of every rule's ``where`` is exercised by a fires line, and needed by one.

A regex is split at its top-level ``|``; each alternative, run alone through the rule's
own condition code (same field modifiers, same Polars/Rust regex engine), must match at
least one counted fires line of the rule. An alternative (or ``any_of`` entry) is also
*needed*: dropping it from the rule must lose at least one fires line, so deleting it
fails a named test here besides the per-line tests of ``test_cases.py``. A pattern shared
by several fields (a YAML anchor for URL and body) is one pattern: an alternative counts
as exercised when it matches on any of those fields, as deleting it changes them all.
"""

from __future__ import annotations

import copy
import doctest
import re
import sys
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from shopwatch.detect.conditions import compile_where

from .helpers import clauses, fires_lines, read_expect
from .test_cases import DETECTORS

_FLAGS = re.compile(r"\(\?[a-zA-Z]+\)")


def split_alternatives(pattern: str) -> list[str]:
    """The top-level alternatives of a regex: ``|`` outside groups and character classes.

    A leading inline flag group (``(?i)``) applies to every alternative, so each keeps it.

    >>> split_alternatives(r"a|b(c|d)|[|x]|\\|y")
    ['a', 'b(c|d)', '[|x]', '\\\\|y']
    >>> split_alternatives(r"[]|]z|[^]|]|[a-z&&[^|]]|q")
    ['[]|]z', '[^]|]', '[a-z&&[^|]]', 'q']
    >>> split_alternatives(r"(?i)union|select")
    ['(?i)union', '(?i)select']
    >>> split_alternatives(r"(?:a|b)c")
    ['(?:a|b)c']
    """
    flags = ""
    lead = _FLAGS.match(pattern)
    if lead:
        flags, pattern = lead.group(0), pattern[lead.end() :]
    parts: list[str] = []
    start = depth = in_class = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if char == "[":
            # a class opens (or nests, in Rust syntax); a leading ']' or '^]' is literal
            in_class += 1
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1
            continue
        if in_class:
            if char == "]":
                in_class -= 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return [flags + part for part in parts]


def test_splitter_doctests() -> None:
    failures, _ = doctest.testmod(sys.modules[__name__], verbose=False)
    assert failures == 0


def _regexes(clause: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(field, pattern) of every ``regex`` condition in a clause, nested ones included."""
    for field, cond in clause.items():
        if field in ("any_of", "none_of"):
            for sub in cond:
                yield from _regexes(sub)
        elif isinstance(cond, dict) and "regex" in cond:
            yield field, cond["regex"]


def _replace_pattern(clause: Any, old: str, new: str) -> Any:
    """A deep copy of ``clause`` with every ``regex: old`` made ``regex: new``."""
    if isinstance(clause, dict):
        out = {}
        for key, value in clause.items():
            if key == "regex" and value == old:
                out[key] = new
            else:
                out[key] = _replace_pattern(value, old, new)
        return out
    if isinstance(clause, list):
        return [_replace_pattern(v, old, new) for v in clause]
    return copy.deepcopy(clause)


def _counted_events(rule_id: str) -> pl.DataFrame:
    """The rule's fires lines that are not context, one row each."""
    context = read_expect(rule_id).get("context") or {}
    frames = [
        line.events() for line in fires_lines(rule_id) if line.no not in context.get(line.file, [])
    ]
    return pl.concat(frames, how="diagonal_relaxed")


def _wheres(rule_id: str) -> list[dict[str, Any]]:
    """The rule's where clauses: its where, or each step of a sequence."""
    return [dict(clause) for clause in clauses(DETECTORS[rule_id])]


def _matches(events: pl.DataFrame, clause: dict[str, Any]) -> pl.Series:
    return events.select(compile_where(clause).alias("m"))["m"]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-")[:40]


#: Alternatives no fires line can need, with the reason; strict, so a rule change that
#: makes one needed (or a new fires line) is noticed.
OVERLAPPING = {
    ("web.sqli_probe", r"'\s*(or|and)\s+\d+\s*(=|<|>)"): (
        "subsumed by the alternative before it (\\w+ covers the digits)"
    ),
    ("web.sensitive_path_probe", r"/root\.exe"): (
        "Code Red II's root.exe is requested under /scripts/ or /MSADC/, listed too"
    ),
    ("web.sensitive_path_probe", r"/scripts/(\.\.|root|cmd)"): (
        "worm requests under /scripts/ end in cmd.exe or root.exe, listed too"
    ),
}


def _alternative_cases(*, needed: bool = False) -> list[Any]:
    params = []
    for rule_id in sorted(DETECTORS):
        by_pattern: dict[str, list[str]] = {}
        for where in _wheres(rule_id):
            for field, pattern in _regexes(where):
                by_pattern.setdefault(pattern, []).append(field)
        for p_no, (pattern, fields) in enumerate(by_pattern.items(), start=1):
            alternatives = split_alternatives(pattern)
            if needed and len(alternatives) == 1:
                continue  # the whole pattern: its fires lines are the per-line tests
            for a_no, alternative in enumerate(alternatives, start=1):
                reason = OVERLAPPING.get((rule_id, alternative)) if needed else None
                marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
                params.append(
                    pytest.param(
                        rule_id,
                        pattern,
                        tuple(fields),
                        a_no - 1,
                        id=f"{rule_id}-re{p_no}-alt{a_no:02d}-{_slug(alternative)}",
                        marks=marks,
                    )
                )
    return params


def _patterns() -> list[Any]:
    seen = dict.fromkeys((p.values[0], p.values[1]) for p in _alternative_cases())
    counts: dict[str, int] = {}
    params = []
    for rule_id, pattern in seen:
        counts[rule_id] = counts.get(rule_id, 0) + 1
        params.append(pytest.param(rule_id, pattern, id=f"{rule_id}-re{counts[rule_id]}"))
    return params


@pytest.mark.parametrize(("rule_id", "pattern"), _patterns())
def test_alternatives_rejoin_to_the_pattern(rule_id: str, pattern: str) -> None:
    """The split loses nothing: its alternatives, rejoined, are the rule's pattern."""
    lead = _FLAGS.match(pattern)
    flags = lead.group(0) if lead else ""
    parts = [a.removeprefix(flags) for a in split_alternatives(pattern)]
    assert flags + "|".join(parts) == pattern


def _any_of_cases() -> list[Any]:
    params = []
    for rule_id in sorted(DETECTORS):
        wheres = _wheres(rule_id)
        for w_no, where in enumerate(wheres):
            step = f"step{w_no + 1}-" if len(wheres) > 1 else ""
            for e_no, entry in enumerate(where.get("any_of", []), start=1):
                name = "+".join(entry)
                params.append(
                    pytest.param(rule_id, w_no, e_no - 1, id=f"{rule_id}-{step}entry{e_no}-{name}")
                )
    return params


@pytest.mark.parametrize(("rule_id", "pattern", "fields", "index"), _alternative_cases())
def test_alternative_matches_a_fires_line(
    rule_id: str, pattern: str, fields: tuple[str, ...], index: int
) -> None:
    """The alternative alone, on the field(s) the rule applies it to, matches a fires line."""
    alternatives = split_alternatives(pattern)
    events = _counted_events(rule_id)
    alone = alternatives[index]
    hits = sum(
        int(_matches(events, {field: {"regex": alone}}).sum())
        for field in fields
        if field.split("|", 1)[0] in events.columns
    )
    assert hits, f"no fires line of {rule_id} matches {alone!r} on {fields}"


@pytest.mark.parametrize(("rule_id", "pattern", "fields", "index"), _alternative_cases(needed=True))
def test_alternative_is_needed(
    rule_id: str, pattern: str, fields: tuple[str, ...], index: int
) -> None:
    """Without this alternative the rule's where loses at least one fires line."""
    alternatives = split_alternatives(pattern)
    rest = "|".join(a for i, a in enumerate(alternatives) if i != index)
    events = _counted_events(rule_id)
    lost = 0
    for where in _wheres(rule_id):
        full = _matches(events, where)
        cut = _matches(events, _replace_pattern(where, pattern, rest))
        lost += int((full & ~cut).sum())
    assert lost, f"deleting {alternatives[index]!r} from {rule_id} loses no fires line"


@pytest.mark.parametrize(("rule_id", "clause", "index"), _any_of_cases())
def test_any_of_entry_is_exercised_and_needed(rule_id: str, clause: int, index: int) -> None:
    """The entry alone matches a fires line, and dropping it loses one."""
    where = _wheres(rule_id)[clause]
    entries = where["any_of"]
    events = _counted_events(rule_id)
    assert int(_matches(events, entries[index]).sum()), "no fires line exercises this entry"
    cut = {**where, "any_of": [e for i, e in enumerate(entries) if i != index]}
    lost = int((_matches(events, where) & ~_matches(events, cut)).sum())
    assert lost, "deleting this any_of entry loses no fires line"
