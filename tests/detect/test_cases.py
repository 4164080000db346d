"""Every detector fires on each variant of its case and stays quiet on its look-alike.

``tests/detect/cases/<rule id>/`` holds ``fires.*`` (attacks; a ``fires.log`` and a
``fires.jsonl`` may sit side by side, e.g. for request bodies that an access log cannot
carry), ``benign.*`` (a look-alike) and ``expect.yaml``. The schema of ``expect.yaml``
depends on the rule:

*Signature rules* (kind ``intel``, or ``threshold`` with ``at_least: 1``: one matching
event is enough) name every line of every fires file::

    variants:            # file -> line number -> variant name
      fires.log:
        1: and-tautology-comment
        2: union-all-select
    context:             # optional: file -> lines that set the scene, not meant to match
      fires.log: [3]

Each variant, fed alone to the detector, must raise an alert of the rule for the line's
own entity (``test_variant_fires[web.sqli_probe-line2-union-all-select]``); a context
line fed alone must raise none. Every line is either a variant or context.

*Aggregate rules* (a count or a distinct count above one) name the attacking entities::

    entities:            # variant name -> the entity fields its alert must carry
      fast-burst: {source.ip: 185.220.101.34}
      ipv6-slow: {source.ip: "2a0b:f4c2::15"}
    context:             # optional, as above: lines the rule's where must not count
      fires.log: [7]

A learned model's case first teaches it the shop's normal traffic; those lines are named
by range and are neither entities nor context::

    learn_from:          # file -> [first line, last line]
      fires.log: [1, 4000]

Running all fires files must alert every listed entity (one test per entity) and no
other; every line that is not context must satisfy the rule's ``where`` clause on its own
(``test_line_is_counted[web.login_brute_force-line31-wordpress-xmlrpc]``), so that a
deleted pattern fails by the name of the line it no longer counts.

A test id names the rule, the file (when a case has several), the line and the variant.
"""

from __future__ import annotations

import json
import re
from typing import Any

import polars as pl
import pytest

from shopwatch.contract import ALERT_SCHEMA, CATEGORIES, SEVERITIES
from shopwatch.detect.conditions import compile_where, derived_column
from shopwatch.detect.content import load_detectors
from shopwatch.detect.registry import Detector

from .helpers import (
    CASES,
    Line,
    case_file,
    clauses,
    fires_files,
    fires_lines,
    ours,
    read_events,
    read_expect,
    run,
)

DETECTORS = {d.id: d for d in ours(load_detectors().detectors)}


def is_signature(detector: Detector) -> bool:
    """Whether one matching event is enough for the rule to alert."""
    return detector.single_event


def _slug(text: str) -> str:
    """A test-id friendly name.

    >>> _slug("UNION ALL select / 1=1")
    'union-all-select-1-1'
    """
    return re.sub(r"[^a-z0-9.:]+", "-", text.lower()).strip("-")


def line_id(line: Line, name: str) -> str:
    """``<rule>-line<n>-<name>``, with the file's extension when the case has several."""
    tag = "" if len(fires_files(line.case)) == 1 else line.file.rsplit(".", 1)[-1] + "-"
    return f"{line.case}-{tag}line{line.no}-{_slug(name)}"


def _context(expect: dict[str, Any], line: Line) -> bool:
    return line.no in (expect.get("context") or {}).get(line.file, [])


def _counted(detector: Detector) -> pl.Expr:
    """Whether an event counts for the rule: its where clause, or any step of a sequence."""
    return pl.any_horizontal([compile_where(where) for where in clauses(detector)])


def _learning(expect: dict[str, Any], line: Line) -> bool:
    """Whether the line is traffic a learned model's case teaches it with."""
    span = (expect.get("learn_from") or {}).get(line.file)
    return span is not None and span[0] <= line.no <= span[1]


def _variant_name(expect: dict[str, Any], line: Line) -> str | None:
    return (expect.get("variants") or {}).get(line.file, {}).get(line.no)


def _entity_name(rule_id: str, expect: dict[str, Any], line: Line) -> str:
    """The listed entity a line of an aggregate case belongs to (``unlisted`` if none).

    An entity may be named by a modified field (``source.ip|net``): the line's value of it;
    ``global: shop`` names the whole shop.
    """
    events = line.events()
    row = events.row(0, named=True)
    for name, entity in (expect.get("entities") or {}).items():
        values = {
            k: "shop"
            if k == "global"  # the whole shop is one group
            else events.select(derived_column(k)).item()
            if "|" in k
            else row.get(k)
            for k in entity
        }
        if all(str(values[k]) == str(v) for k, v in entity.items()):
            return str(name)
    return "unlisted"


def _signature_cases() -> list[Any]:
    params = []
    for rule_id in sorted(DETECTORS):
        if not is_signature(DETECTORS[rule_id]):
            continue
        expect = read_expect(rule_id)
        for line in fires_lines(rule_id):
            name = _variant_name(expect, line)
            if name is not None:
                params.append(pytest.param(line, id=line_id(line, name)))
    return params


def _context_cases() -> list[Any]:
    params = []
    for rule_id in sorted(DETECTORS):
        expect = read_expect(rule_id)
        params += [
            pytest.param(line, id=line_id(line, "context"))
            for line in fires_lines(rule_id)
            if _context(expect, line)
        ]
    return params


def _entity_cases() -> list[Any]:
    return [
        pytest.param(rule_id, entity, id=f"{rule_id}-{_slug(name)}")
        for rule_id in sorted(DETECTORS)
        if not is_signature(DETECTORS[rule_id])
        for name, entity in (read_expect(rule_id).get("entities") or {}).items()
    ]


def _counted_cases() -> list[Any]:
    params = []
    for rule_id in sorted(DETECTORS):
        if is_signature(DETECTORS[rule_id]):
            continue
        expect = read_expect(rule_id)
        for line in fires_lines(rule_id):
            if not _context(expect, line) and not _learning(expect, line):
                name = _entity_name(rule_id, expect, line)
                params.append(pytest.param(line, id=line_id(line, name)))
    return params


def _all_fires(rule_id: str) -> pl.DataFrame:
    frames = [read_events(p) for p in fires_files(rule_id)]
    return pl.concat(frames, how="diagonal_relaxed").sort("@timestamp", maintain_order=True)


def _entities(alerts: pl.DataFrame) -> list[dict[str, Any]]:
    """Each alert's entity, with the group keys above one entity (``details.keys``) too."""
    found = []
    for entity, details in alerts.select("entity", "details").iter_rows():
        keys = json.loads(details).get("keys", {}) if details else {}
        found.append({**{k: v for k, v in entity.items() if v is not None}, **keys})
    return found


def test_every_detector_has_a_case_folder() -> None:
    missing = sorted(i for i in DETECTORS if not (CASES / i).is_dir())
    assert not missing, f"detectors without tests/detect/cases/<id>/: {missing}"


def test_no_case_folder_without_a_detector() -> None:
    orphans = sorted(p.name for p in CASES.iterdir() if p.is_dir() and p.name not in DETECTORS)
    assert not orphans, f"case folders for unknown detectors: {orphans}"


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_expect_accounts_for_every_line(rule_id: str) -> None:
    """A signature case names each line once (variant or context); an aggregate its entities."""
    expect = read_expect(rule_id)
    lines = fires_lines(rule_id)
    known = {(line.file, line.no) for line in lines}
    context = {(f, n) for f, nos in (expect.get("context") or {}).items() for n in nos}
    assert context <= known, f"context names lines that do not exist: {sorted(context - known)}"
    if is_signature(DETECTORS[rule_id]):
        assert "entities" not in expect, "a signature rule lists variants, not entities"
        variants = {(f, n) for f, names in (expect.get("variants") or {}).items() for n in names}
        assert variants <= known, f"variants name missing lines: {sorted(variants - known)}"
        assert not variants & context, f"both variant and context: {sorted(variants & context)}"
        unnamed = sorted(known - variants - context)
        assert not unnamed, f"fires lines that are neither a variant nor context: {unnamed}"
    else:
        assert "variants" not in expect, "an aggregate rule lists entities, not line variants"
        assert expect.get("entities"), "an aggregate case lists the entities it must alert"


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_fires_on_its_case(rule_id: str) -> None:
    """All fires files at once: well-formed alerts, and (aggregates) exactly the listed entities."""
    detector = DETECTORS[rule_id]
    alerts = run(detector, [_all_fires(rule_id)])
    assert alerts.height >= 1
    assert alerts.schema == pl.Schema(ALERT_SCHEMA)
    for row in alerts.iter_rows(named=True):
        assert row["rule.id"] == rule_id
        assert row["rule.category"] in CATEGORIES
        assert row["severity"] in SEVERITIES
        assert 0 <= row["risk_score"] <= 100
        assert row["event.ids"], "an alert names the events behind it"
        assert row["message"] and "{" not in row["message"], row["message"]
    if not is_signature(detector):
        listed = read_expect(rule_id)["entities"].values()
        wanted = [{k: str(v) for k, v in e.items()} for e in listed]
        extra = [e for e in _entities(alerts) if not any(w.items() <= e.items() for w in wanted)]
        assert not extra, f"alerts for entities expect.yaml does not list: {extra}"


@pytest.mark.parametrize("line", _signature_cases())
def test_variant_fires(line: Line) -> None:
    """One variant line alone raises an alert of its rule, for the line's own entity."""
    detector = DETECTORS[line.case]
    events = line.events()
    alerts = run(detector, [events])
    assert alerts.height == 1, f"{line.file}:{line.no} alone raised {alerts.height} alerts"
    row = alerts.row(0, named=True)
    assert row["rule.id"] == line.case
    event = events.row(0, named=True)
    for key in detector.keys:
        assert row["entity"].get(key, event[key]) == event[key]


@pytest.mark.parametrize("line", _context_cases())
def test_context_line_is_quiet(line: Line) -> None:
    """A line listed as context does not alert alone (else it is a variant to name)."""
    detector = DETECTORS[line.case]
    if is_signature(detector):
        assert run(detector, [line.events()]).height == 0
    else:
        matched = line.events().filter(_counted(detector)).height
        assert matched == 0, "a context line of an aggregate case must not be counted"


@pytest.mark.parametrize(("rule_id", "entity"), _entity_cases())
def test_entity_fires(rule_id: str, entity: dict[str, Any]) -> None:
    """All fires files together alert this attacking entity."""
    alerts = run(DETECTORS[rule_id], [_all_fires(rule_id)])
    wanted = {k: str(v) for k, v in entity.items()}
    found = _entities(alerts)
    assert any(wanted.items() <= e.items() for e in found), f"alerted only {found}"


@pytest.mark.parametrize("line", _counted_cases())
def test_line_is_counted(line: Line) -> None:
    """A line of an aggregate case satisfies the rule's where clause on its own."""
    detector = DETECTORS[line.case]
    expect = read_expect(line.case)
    assert _entity_name(line.case, expect, line) != "unlisted", "the line's entity is not listed"
    assert line.events().filter(_counted(detector)).height == 1


@pytest.mark.parametrize("rule_id", sorted(DETECTORS))
def test_no_detector_fires_on_a_benign_look_alike(rule_id: str) -> None:
    events = read_events(case_file(rule_id, "benign"))
    assert events.height >= 5, "a look-alike needs real traffic"
    noisy = {}
    for det_id, detector in DETECTORS.items():
        alerts = run(detector, [events])
        if alerts.height:
            noisy[det_id] = alerts["message"].to_list()
    assert not noisy, f"benign look-alike of {rule_id} raised alerts: {noisy}"
