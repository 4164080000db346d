"""Rule conditions are validated at load by the engine that runs them (Polars), not by ``re``.

Every pattern class here compiles with Python's ``re`` but not with the Rust regex engine
behind ``str.contains``; each must be a ContentError naming file:line, the pattern and the
engine's reason, and the rule must be skipped at load while the other rules still load.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import KeyedState, build
from shopwatch.detect.content import load_detectors
from shopwatch.errors import ContentError

RULE = {
    "id": "test.probe",
    "kind": "threshold",
    "category": "web_attack",
    "where": {"url.original|decoded": {"regex": "x"}},
    "group_by": ["source.ip"],
    "count": {"at_least": 1, "within": "1m"},
}

#: A top-level alternation whose compiled program is over Rust regex's 10 MiB size limit.
HUGE = "|".join(rf"\w+{i}\w+" for i in range(2000))

#: (name, pattern, words of the engine's reason)
REFUSED = [
    ("look_ahead", "union(?=\\s+select)", "look-around"),
    ("negative_look_ahead", "admin(?!istrator)", "look-around"),
    ("look_behind", "(?<=/)etc/passwd", "look-around"),
    ("back_reference", "(['\"]).*\\1", "backreferences are not supported"),
    ("size_limit", HUGE, "size limit"),
]


@pytest.mark.parametrize(("name", "pattern", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_python_re_accepts_what_the_engine_refuses(name: str, pattern: str, reason: str) -> None:
    re.compile(pattern)  # the old validator's view: fine
    with pytest.raises(pl.exceptions.PolarsError, match=reason):
        pl.DataFrame({"s": ["x"]}).select(pl.col("s").str.contains(pattern))


@pytest.mark.parametrize(("name", "pattern", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_build_refuses_patterns_the_engine_cannot_run(name: str, pattern: str, reason: str) -> None:
    rule = {**RULE, "where": {"url.original|decoded": {"regex": pattern}}}
    with pytest.raises(ContentError) as err:
        build(rule, "rules/web/probe.yaml")
    text = str(err.value)
    assert "rules/web/probe.yaml" in text
    assert reason in text
    assert pattern[:40] in text
    assert "\n" not in text


@pytest.mark.parametrize(("name", "pattern", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_not_regex_and_nested_clauses_are_checked_too(name: str, pattern: str, reason: str) -> None:
    rule = {**RULE, "where": {"any_of": [{"url.path": "/"}, {"url.query": {"not_regex": pattern}}]}}
    with pytest.raises(ContentError, match=re.escape(reason)):
        build(rule, "x.yaml")


def test_case_insensitive_and_word_boundaries_are_accepted_as_they_run() -> None:
    rule = {**RULE, "where": {"url.original|lower": {"regex": r"(?i)\bunion\b.*\bselect\b"}}}
    det = build(rule, "x.yaml")
    batch = conform(
        pl.DataFrame(
            {
                "@timestamp": [datetime(2026, 1, 1, tzinfo=UTC)],
                "source.ip": ["203.0.113.5"],
                "url.original": ["/p?id=1 UNION ALL SELECT ü"],
            }
        )
    )
    assert det.detect(batch, KeyedState(det.keys)).height == 1


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ({"http.response.status_code": {"regex": "^40"}}, "String"),
        ({"http.response.status_code": "404"}, "compare"),
        ({"http.response.status_code": {"gte": "400"}}, "compare"),
    ],
    ids=["regex_on_integer", "eq_string_on_integer", "gte_string_on_integer"],
)
def test_conditions_that_fail_on_the_columns_types_are_refused(
    where: dict[str, object], reason: str
) -> None:
    with pytest.raises(ContentError) as err:
        build({**RULE, "where": where}, "x.yaml")
    assert reason in str(err.value) and "http.response.status_code" in str(err.value)


def _write_rules(folder: Path, pattern: str) -> tuple[Path, int]:
    """A bad rule (returns its file and the pattern's line) beside a good one."""
    folder.mkdir(parents=True, exist_ok=True)
    bad = folder / "bad.yaml"
    bad.write_text(
        "id: test.bad_regex\n"
        "kind: threshold\n"
        "category: web_attack\n"
        "where:\n"
        "  event.dataset: http.access\n"
        "  url.original|decoded:\n"
        f"    regex: '{pattern}'\n"
        "group_by: [source.ip]\n"
        "count: {at_least: 1, within: 1m}\n",
        encoding="utf-8",
    )
    (folder / "good.yaml").write_text(
        "id: test.good_regex\n"
        "kind: threshold\n"
        "category: web_attack\n"
        "where: {url.original: {regex: 'etc/passwd'}}\n"
        "group_by: [source.ip]\n"
        "count: {at_least: 1, within: 1m}\n",
        encoding="utf-8",
    )
    return bad, 7


@pytest.mark.parametrize(("name", "pattern", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_load_skips_the_rule_with_file_line_pattern_and_reason(
    tmp_path: Path, name: str, pattern: str, reason: str
) -> None:
    bad, line = _write_rules(tmp_path / "rules", pattern.replace("'", "''"))
    loaded = load_detectors([tmp_path / "rules"])
    ids = {d.id for d in loaded.detectors}
    assert "test.good_regex" in ids and "test.bad_regex" not in ids
    problems = [e for e in loaded.errors if "test.bad_regex" in str(e)]
    assert len(problems) == 1
    assert problems[0].where == f"{bad}:{line}"
    assert reason in str(problems[0]) and pattern[:40] in str(problems[0])


def test_other_errors_name_the_line_of_the_key(tmp_path: Path) -> None:
    folder = tmp_path / "rules"
    folder.mkdir()
    path = folder / "x.yaml"
    path.write_text(
        "id: test.typo\nkind: threshold\ncategory: web_attack\ngroup_by: [source.ip]\n"
        "count:\n  at_least: 1\n  within: '10'\n",
        encoding="utf-8",
    )
    loaded = load_detectors([folder])
    (problem,) = [e for e in loaded.errors if "test.typo" in str(e)]
    assert problem.where == f"{path}:7" and "no unit" in str(problem)


def test_every_shipped_rule_passes_the_engine_check() -> None:
    loaded = load_detectors()
    assert loaded.errors == []
    assert len(loaded.detectors) > 10
