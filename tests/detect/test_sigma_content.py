"""The shipped SigmaHQ rules, the log sources they read, the multi-pattern gate in front of
them, where their alerts say they come from, and ``shopwatch rules check``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopwatch.config import Settings
from shopwatch.contract import conform
from shopwatch.detect.conditions import derived_column, derived_name
from shopwatch.detect.content import builtin_sigma_dir, load_detectors, read_rule_files
from shopwatch.detect.gate import _union, candidates, literal_gate
from shopwatch.detect.registry import Detector, build
from shopwatch.detect.state import KeyedState
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.engine import Engine

from .helpers import CASES, read_events

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LOADED = load_detectors()
SHIPPED = [d for d in LOADED.detectors if (d.spec.origin or {}).get("ruleset") == "SigmaHQ"]
GATED = {d.id: d for d in LOADED.detectors if getattr(d, "gate", None)}


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    numbered = [
        {"@timestamp": T0 + timedelta(seconds=i), "event.id": f"e{i}", **row}
        for i, row in enumerate(rows)
    ]
    return conform(pl.from_dicts(numbered, infer_schema_length=None))


def alerts(detector: Detector, batch: pl.DataFrame) -> pl.DataFrame:
    return detector.detect(batch, KeyedState(detector.keys))


def sigma_folder(tmp_path: Path, *texts: str) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"rule{i}.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    return folder


def one(tmp_path: Path, text: str) -> Detector:
    rules, errors = read_rule_files([sigma_folder(tmp_path, text)])
    assert errors == [] and len(rules) == 1
    rule = next(iter(rules.values()))
    return build(rule.raw, rule.path, rule.lines)


# -- what is shipped ----------------------------------------------------------------------


def test_the_sigmahq_rules_ship_loaded_with_their_licence() -> None:
    assert LOADED.errors == []
    assert len(SHIPPED) >= 120  # 132 enabled (133 shipped) at commit 8eaafff of SigmaHQ/sigma
    folder = builtin_sigma_dir()
    assert "Detection Rule License" in (folder / "LICENSE.Detection.Rules.md").read_text()
    sources = {d.spec.origin["id"] for d in SHIPPED if d.spec.origin}
    assert len(sources) == len(SHIPPED)  # each its own Sigma UUID
    categories = {d.category for d in SHIPPED}
    assert {"web_attack", "vendor_risk", "host"} <= categories


def test_each_shipped_rule_names_its_author_link_and_licence() -> None:
    for detector in SHIPPED:
        origin = detector.spec.origin or {}
        assert origin["license"] == "Detection Rule License (DRL) 1.1", detector.id
        assert origin["link"].startswith("https://github.com/SigmaHQ/sigma/blob/8eaafff"), origin
        assert origin["link"].endswith(".yml") and "/rules" in origin["link"]
        assert origin.get("author"), detector.id


def _request(**fields: Any) -> dict[str, Any]:
    return {
        "event.dataset": "http.access",
        "source.ip": "198.51.100.7",
        "http.request.method": "GET",
        "url.original": "/",
        "url.path": "/",
        "http.response.status_code": 200,
        "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/128.0",
        **fields,
    }


#: (what, a request SigmaHQ's rules catch, the rule title that must fire)
ATTACKS = [
    (
        "log4shell_user_agent",
        _request(**{"user_agent.original": "${jndi:ldap://198.51.100.7:1389/a}"}),
        "Log4j RCE",
    ),
    (
        "path_traversal",
        _request(**{"url.original": "/download?file=../../../../etc/passwd"}),
        "Path Traversal",
    ),
    (
        "xss_strings",
        _request(**{"url.original": "/search?q=<script>alert(document.cookie)</script>"}),
        "Cross Site Scripting",
    ),
    (
        "ssti",
        _request(**{"url.original": "/page?name={{7*7}}"}),
        "Template Injection",
    ),
]


@pytest.mark.parametrize(("name", "row", "title"), ATTACKS, ids=[a[0] for a in ATTACKS])
def test_shipped_rules_catch_what_they_were_written_for(
    name: str, row: dict[str, Any], title: str
) -> None:
    batch = frame(row)
    fired = [d.spec.name for d in SHIPPED if alerts(d, batch).height]
    assert any(title.lower() in t.lower() for t in fired), (name, fired)


def test_shipped_rules_stay_quiet_on_the_benign_look_alikes_of_every_case() -> None:
    benign = [read_events(p) for p in sorted(CASES.glob("*/benign*"))]
    batch = pl.concat(benign, how="diagonal_relaxed").sort("@timestamp")
    assert batch.height > 1000
    fired = {d.id: alerts(d, batch).height for d in SHIPPED}
    assert {k: v for k, v in fired.items() if v} == {}


# -- log sources --------------------------------------------------------------------------

PROXY = """\
title: Paste site from a shop server
id: 2b0b1d4c-1111-4c4c-9e9e-000000000001
status: test
logsource: {category: proxy}
detection:
    selection:
        cs-host|endswith: 'pastebin.com'
        c-uri-extension: 'txt'
    condition: selection
level: high
"""


def test_a_proxy_rule_reads_the_shops_outbound_calls(tmp_path: Path) -> None:
    detector = one(tmp_path, PROXY)
    assert detector.keys == ("url.domain",) and detector.category == "vendor_risk"
    call = {
        "event.dataset": "vendor.api",
        "url.domain": "pastebin.com",
        "url.full": "https://pastebin.com/raw/Dump.TXT",
        "url.path": "/raw/Dump.TXT",
    }
    assert alerts(detector, frame(call)).height == 1
    # the extension of the path's last segment only; and inbound requests are not read
    assert alerts(detector, frame({**call, "url.path": "/raw.txt/dump"})).height == 0
    assert alerts(detector, frame({**call, "event.dataset": "http.access"})).height == 0


def test_an_ipv6_network_matches_an_address_however_it_is_written(tmp_path: Path) -> None:
    rule = PROXY.replace(
        "        cs-host|endswith: 'pastebin.com'\n        c-uri-extension: 'txt'",
        "        dst_ip|cidr: ['::1/128', '2001:db8::/32', '10.0.0.0/8']",
    )
    detector = one(tmp_path, rule)
    call = {"event.dataset": "vendor.api", "url.domain": "x.example"}
    for address in ("::1", "0:0:0:0:0:0:0:1", "2001:DB8:0::7", "10.1.2.3", "::ffff:10.0.0.9"):
        assert alerts(detector, frame({**call, "destination.ip": address})).height == 1, address
    for address in ("::2", "2001:db9::1", "11.0.0.1", "not an address", None):
        assert alerts(detector, frame({**call, "destination.ip": address})).height == 0, address


@pytest.mark.parametrize(
    ("logsource", "process", "other"),
    [
        ("{category: application, product: django}", "gunicorn", None),
        ("{service: apache}", "apache2", "nginx"),
        ("{service: nginx}", "nginx", "apache2"),
    ],
)
def test_error_log_and_application_rules_search_server_log_messages(
    tmp_path: Path, logsource: str, process: str, other: str | None
) -> None:
    rule = f"""\
        title: Crash words
        status: test
        logsource: {logsource}
        detection:
            keywords: ['Segmentation fault']
            condition: keywords
        level: medium
        """
    detector = one(tmp_path, rule)
    line = {
        "event.dataset": "system.syslog",
        "host.name": "web-1",
        "process.name": process,
        "message": "child pid 4242 exit signal Segmentation fault (11)",
    }
    assert detector.keys == ("host.name",)
    assert alerts(detector, frame(line)).height == 1
    assert alerts(detector, frame({**line, "message": "child pid 4242 exited"})).height == 0
    assert alerts(detector, frame({**line, "event.dataset": "http.access"})).height == 0
    if other is not None:
        assert alerts(detector, frame({**line, "process.name": other})).height == 0


# -- the multi-pattern gate ---------------------------------------------------------------


def test_gate_of_each_construct() -> None:
    text = {"url.original": {"regex": "(?is:/etc/passwd)|(?is:^/wp-.*\\.php$)"}}
    assert literal_gate(text) == {"url.original": frozenset({"/etc/passwd", "/wp-"})}
    equal = {"user_agent.original|lower": ["sqlmap", "nikto"]}
    assert literal_gate(equal) == {"=user_agent.original": frozenset({"sqlmap", "nikto"})}
    decoded = {"url.original|decoded": {"regex": "(?is:union select)"}}
    assert literal_gate(decoded) == {derived_name("url.original|decoded"): {"union select"}}
    both = {"any_of": [text, {"url.query": {"regex": "(?i:cmd=)"}}]}
    assert literal_gate(both) == {
        "url.original": frozenset({"/etc/passwd", "/wp-"}),
        "url.query": frozenset({"cmd="}),
    }
    # An AND keeps its most selective condition; a method or a dataset is never a gate.
    anded = {"event.dataset": "http.access", "http.request.method": "POST", **text}
    assert literal_gate(anded) == literal_gate(text)
    refused = [
        {"any_of": [text, {"http.response.status_code": {"gte": 500}}]},  # a branch without
        {"none_of": [text]},  # a negation proves nothing
        {"url.original": {"regex": "(?i:union\\s+select)"}},  # a class
        {"url.original": {"regex": "(?i:a|b+)"}},  # repetition
        {"url.original": {"regex": "(?i:javascript\\>)"}},  # \> ends a word in Rust
        {"url.original": {"regex": "(?i:straße)"}},  # non-ASCII: the pass folds ASCII only
        {"url.original": {"regex": "(?is:.*)"}},  # no literal at all
        {"url.original|net": "203.0.113.0/24"},
        {"event.dataset": "http.access"},
        None,
    ]
    for clause in refused:
        assert literal_gate(clause) is None, clause


def _probe_rows() -> list[dict[str, Any]]:
    """Rows built from every gated rule's literals, in each text field, as they would be
    sent: as is, upper-cased, folded by Unicode (K for k), and on each dataset."""
    union = _union([d.gate for d in GATED.values()])  # type: ignore[attr-defined]
    literals = sorted({lit for lits in union.values() for lit in lits})
    rows: list[dict[str, Any]] = []
    for lit in literals:
        for form in (lit, lit.upper(), lit.replace("k", "\u212a").replace("s", "\u017f")):
            for method, status in (("GET", 200), ("POST", 404)):
                rows.append(
                    _request(
                        **{
                            "http.request.method": method,
                            "http.response.status_code": status,
                            "url.original": f"/a{form}b",
                            "url.path": f"/a{form}",
                            "user_agent.original": form,
                            "http.request.referrer": f"https://x.example/{form}",
                            "http.request.body.content": form,
                        }
                    )
                )
            rows.append(
                {
                    "event.dataset": "vendor.api",
                    "url.full": f"https://{form}/x{form}",
                    "url.domain": form,
                    "url.path": f"/x{form}",
                    "user_agent.original": form,
                }
            )
            rows.append(
                {
                    "event.dataset": "system.syslog",
                    "host.name": "web-1",
                    "process.name": "nginx",
                    "message": f"x {form} y",
                }
            )
    return rows


def test_gated_rules_find_exactly_what_they_find_on_the_whole_batch() -> None:
    batch = frame(*_probe_rows())
    batch = batch.with_columns(
        derived_column("url.original|decoded"), derived_column("http.request.body.content|decoded")
    )
    given = candidates(batch, {i: d.gate for i, d in GATED.items()})  # type: ignore[attr-defined]
    fired = 0
    for rule_id, detector in GATED.items():
        whole = alerts(detector, batch)
        gated = alerts(detector, given[rule_id])
        assert gated.equals(whole), rule_id
        fired += whole.height > 0
    # most rules need more than a literal (a method, a status, two fields): 62 of 129 fire
    assert fired >= 0.4 * len(GATED), f"only {fired} of {len(GATED)} gated rules fired"
    assert given[next(iter(GATED))].height < batch.height


def test_unicode_case_folding_cannot_slip_past_the_gate() -> None:
    rule = {"url.original": {"regex": "(?is:/etc/passwd)"}}
    gate = literal_gate(rule)
    assert gate is not None
    # U+017F (long s) is s to a (?i) regex: the row matches, so the gate must pass it
    batch = frame(_request(**{"url.original": "/f?p=/etc/pa\u017f\u017fwd"}))
    assert batch.filter(pl.col("url.original").str.contains("(?is:/etc/passwd)")).height == 1
    assert candidates(batch, {"r": gate})["r"].height == 1


def test_the_engine_gives_the_same_alerts_with_and_without_the_gate() -> None:
    rows = _probe_rows()[::7]
    batch = frame(*rows)
    gated_engine = Engine(list(LOADED.detectors))
    with_gate = gated_engine.process(batch)
    plain = load_detectors().detectors
    for detector in plain:
        if hasattr(detector, "gate"):
            detector.gate = None  # type: ignore[attr-defined]
    without = Engine(plain).process(batch)
    assert with_gate.height > 20
    cols = ["rule.id", "@timestamp", "entity", "event.ids", "message"]
    assert with_gate.select(cols).sort(cols[:2]).equals(without.select(cols).sort(cols[:2]))


# -- the alert says where the rule comes from; switching rules off -----------------------


def test_a_shipped_rules_alert_carries_its_origin(tmp_path: Path) -> None:
    engine = build_engine(Settings(data_dir=tmp_path))
    out = engine.process(frame(ATTACKS[0][1]))
    sigma = out.filter(pl.col("rule.id").str.starts_with("sigma."))
    assert sigma.height >= 1
    origin = json.loads(sigma["details"][0])["rule_origin"]
    assert origin["ruleset"] == "SigmaHQ" and origin["license"].startswith("Detection Rule")
    assert origin["author"] and origin["link"].endswith(".yml") and origin["id"]


def test_sigma_rules_are_switched_off_by_uuid_or_all_at_once(tmp_path: Path) -> None:
    detector = SHIPPED[0]
    uuid = (detector.spec.origin or {})["id"]
    off = load_detectors(overrides={uuid.upper(): type("O", (), {"enabled": False})()})
    assert detector.id not in {d.id for d in off.detectors}
    assert len(off.detectors) == len(LOADED.detectors) - 1
    none = load_detectors(sigma_rules=False)
    assert not [d for d in none.detectors if d.id.startswith("sigma.")]
    assert len(none.detectors) == len(LOADED.detectors) - len(SHIPPED)


def test_a_rule_the_set_ships_disabled_says_why_and_can_be_switched_on() -> None:
    from shopwatch.config import DetectorOverride

    webshell = "sigma.7ff9db12_1b94_4a79_ba68_a2402c5d6729"
    assert webshell not in {d.id for d in LOADED.detectors}
    every = {d.id: d for d in load_detectors(include_disabled=True).detectors}
    assert "search" in (every[webshell].spec.origin or {})["disabled"]
    on = load_detectors(overrides={webshell: DetectorOverride(enabled=True)})
    assert webshell in {d.id for d in on.detectors}


# -- shopwatch rules check ----------------------------------------------------------------

GOOD = """\
title: TRACE method
id: 7d3c1d4c-2222-4c4c-9e9e-000000000002
logsource: {category: webserver}
detection:
    selection: {cs-method: TRACE}
    condition: selection
"""
FIELDREF = """\
title: Referrer is the URL
logsource: {category: webserver}
detection:
    selection: {cs-referer|fieldref: cs-uri-query}
    condition: selection
"""
K8S = """\
title: Pod deleted
logsource: {product: kubernetes, service: audit}
detection:
    selection: {verb: delete}
    condition: selection
"""


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopwatch", "rules", "check", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_rules_check_says_which_rules_run_and_why_the_others_do_not(tmp_path: Path) -> None:
    folder = sigma_folder(tmp_path, GOOD, FIELDREF, K8S)
    result = check(str(folder), "--json", str(tmp_path / "check.json"))
    assert result.returncode == 1, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("runs") and "TRACE method" in line for line in lines)
    assert "field references" in result.stdout
    assert "product kubernetes, service audit is not one shopwatch ingests" in result.stdout
    assert "1 of 3 rules compile and run" in result.stdout
    report = json.loads((tmp_path / "check.json").read_text())
    status = {r["title"]: r["status"] for r in report["rules"]}
    assert status == {
        "TRACE method": "runs",
        "Referrer is the URL": "fails",
        "Pod deleted": "fails",
    }
    assert report["by_log_source"]["category:webserver"] == {"runs": 1, "fails": 1}
    fails = [r for r in report["rules"] if r["status"] == "fails"]
    assert all(r["line"] >= 1 and r["reason"] for r in fails)


def test_rules_check_exits_0_when_every_rule_runs(tmp_path: Path) -> None:
    result = check(str(sigma_folder(tmp_path, GOOD)))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 of 1 rules compile and run" in result.stdout


def test_rules_check_runs_nine_in_ten_sigmahq_web_proxy_and_sshd_rules(
    datasets: Path, tmp_path: Path
) -> None:
    sigma = datasets / "sigma"
    if not sigma.is_dir():
        pytest.skip(f"SigmaHQ rules absent at {sigma}")
    out = tmp_path / "check.json"
    result = check(str(sigma), "--json", str(out))
    assert result.returncode == 1  # some log sources are not ours (Kubernetes, GitHub, ...)
    by_source = json.loads(out.read_text())["by_log_source"]
    asked = ["category:webserver", "category:proxy", "product:linux service:sshd"]
    runs = sum(by_source[s]["runs"] for s in asked)
    total = sum(by_source[s]["runs"] + by_source[s]["fails"] for s in asked)
    assert total >= 115 and runs / total >= 0.9, by_source


# -- found in review ------------------------------------------------------------------------


def test_in_takes_a_list_not_a_string() -> None:
    from shopwatch.detect.conditions import ConditionError, check_where

    with pytest.raises(ConditionError, match="takes a list"):
        check_where({"url.path": {"in": "/admin"}})


def test_a_failed_gate_pass_runs_every_rule_on_the_whole_batch() -> None:
    rules = [
        build(
            {
                "id": f"t.{name}",
                "kind": "threshold",
                "category": "web_attack",
                "where": where,
                "group_by": ["source.ip"],
                "count": {"at_least": 1, "within": "10m"},
            },
            "test",
        )
        for name, where in (
            ("gated", {"user_agent.original": {"regex": "(?i:sqlmap)"}}),
            ("plain", {"url.original": {"regex": "(?i:etc/passwd)|(?i:\\d)"}}),
        )
    ]
    assert getattr(rules[0], "gate", None) and not getattr(rules[1], "gate", None)
    # not conformed: the user agent column is all null, typed Null, which the pass refuses
    batch = pl.DataFrame(
        {
            "@timestamp": [T0],
            "event.id": ["e0"],
            "source.ip": ["198.51.100.7"],
            "url.original": ["/x?f=/etc/passwd"],
            "user_agent.original": [None],
        }
    )
    out = Engine(rules).process(batch)
    assert out["rule.id"].to_list() == ["t.plain"]


def _write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_rules_check_blames_each_problem_on_its_own_document(tmp_path: Path) -> None:
    from shopwatch.detect.check import check_rules

    folder = tmp_path / "rules"
    _write(folder, "a.yml", GOOD + "---\n- not\n- a rule\n")
    _write(folder, "b.yml", GOOD.replace("TRACE method", "TRACE again"))  # same UUID
    _write(folder, "c.yml", GOOD.replace("7d3c1d4c", "8d3c1d4c") + "---\nbad: [yaml\n")
    checks = {(Path(c.path).name, c.title or c.reason[:20]): c for c in check_rules([folder])}
    statuses = {k: v.status for k, v in checks.items()}
    assert statuses[("a.yml", "TRACE method")] == "fails"  # shadowed by b.yml, never run
    assert "shadowed" in checks[("a.yml", "TRACE method")].reason
    assert statuses[("b.yml", "TRACE again")] == "runs"
    listed = [c for c in checks.values() if c.path.endswith("a.yml") and not c.title]
    assert len(listed) == 1 and listed[0].line == 8 and "mapping" in listed[0].reason
    assert statuses[("c.yml", "TRACE method")] == "runs"
    assert any(c.path.endswith("c.yml") and "not valid YAML" in c.reason for c in checks.values())


def test_a_bad_rule_set_file_is_reported_and_a_list_of_ids_disables(tmp_path: Path) -> None:
    from shopwatch.detect.check import check_rules

    folder = tmp_path / "rules"
    _write(folder, "RULESET.yml", "name: Mine\ndisabled: 5\n")
    _write(folder, "a.yml", GOOD)
    assert any(c.log_source == "ruleset" and c.status == "fails" for c in check_rules([folder]))
    _write(folder, "RULESET.yml", "name: Mine\ndisabled: [7d3c1d4c-2222-4c4c-9e9e-000000000002]\n")
    rules, errors = read_rule_files([folder])
    assert errors == [] and next(iter(rules.values())).raw["enabled"] is False


def test_a_symlinked_rule_links_to_the_rule_set(tmp_path: Path) -> None:
    folder = tmp_path / "set"
    _write(folder, "RULESET.yml", "name: Mine\nlink: https://example.org/rules\ncommit: abc\n")
    target = _write(tmp_path / "elsewhere", "one.yml", GOOD)
    (folder / "one.yml").symlink_to(target)
    _write(folder / "sub", "two.yml", GOOD.replace("7d3c1d4c", "9d3c1d4c"))
    rules, errors = read_rule_files([folder])
    assert errors == []
    links = sorted(r.raw["origin"]["link"] for r in rules.values())
    assert links == [
        "https://example.org/rules/blob/abc/one.yml",
        "https://example.org/rules/blob/abc/sub/two.yml",
    ]


def test_a_rule_tuned_by_id_and_by_uuid_is_an_error() -> None:
    from shopwatch.config import DetectorOverride

    detector = SHIPPED[0]
    uuid = (detector.spec.origin or {})["id"]
    both = {uuid: DetectorOverride(enabled=False), detector.id: DetectorOverride(params={})}
    loaded = load_detectors(overrides=both)
    assert any("twice" in str(e) for e in loaded.errors)


def test_a_rule_switched_on_no_longer_says_it_ships_disabled() -> None:
    from shopwatch.config import DetectorOverride

    webshell = "sigma.7ff9db12_1b94_4a79_ba68_a2402c5d6729"
    on = load_detectors(overrides={webshell: DetectorOverride(enabled=True)})
    origin = next(d for d in on.detectors if d.id == webshell).spec.origin or {}
    assert "disabled" not in origin and origin["ruleset"] == "SigmaHQ"
