"""Sigma rules and Sigma correlation rules compiled onto the threshold and sequence kinds.

Every rule here is real Sigma YAML read by pySigma and converted through the same loader
as our own rule files; every detector runs its ``detect`` over contract-shaped events.
"""

from __future__ import annotations

import base64
import os
import re
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect import KeyedState, build
from shopwatch.detect.content import load_detectors, read_rule_files
from shopwatch.detect.registry import Detector
from shopwatch.errors import ContentError

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "sigma.md"


def convert(tmp_path: Path, *texts: str) -> tuple[dict[str, Detector], list[ContentError]]:
    """Each text a Sigma file in ``rules/sigma``; the detectors built from them and the errors."""
    folder = tmp_path / "rules" / "sigma"
    folder.mkdir(parents=True, exist_ok=True)
    for i, text in enumerate(texts):
        (folder / f"rule{i}.yml").write_text(textwrap.dedent(text), encoding="utf-8")
    rules, errors = read_rule_files([tmp_path / "rules"])
    detectors: dict[str, Detector] = {}
    for rule_id, rule in rules.items():
        try:
            detectors[rule_id] = build(rule.raw, rule.path, rule.lines)
        except ContentError as err:
            errors.append(err)
    return detectors, errors


def one(tmp_path: Path, *texts: str) -> Detector:
    """The one detector the texts convert to (no errors allowed)."""
    detectors, errors = convert(tmp_path, *texts)
    assert errors == []
    assert len(detectors) == 1, sorted(detectors)
    return next(iter(detectors.values()))


def refused(tmp_path: Path, *texts: str) -> ContentError:
    """The one error the texts give (and no detector)."""
    detectors, errors = convert(tmp_path, *texts)
    assert len(errors) == 1, errors
    assert not [d for d in detectors if d.startswith("sigma.")]
    assert "rules/sigma/rule" in errors[0].where
    return errors[0]


def request(at: float = 0, **fields: Any) -> dict[str, Any]:
    """One web request (an access-log line as the parser gives it)."""
    row: dict[str, Any] = {
        "@timestamp": T0 + timedelta(seconds=at),
        "event.dataset": "http.access",
        "source.ip": "203.0.113.9",
        "http.request.method": "GET",
        "url.original": "/",
        "http.response.status_code": 200,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64)",
    }
    row.update(fields)
    return row


def frame(*rows: dict[str, Any]) -> pl.DataFrame:
    numbered = [{"event.id": f"e{i}", **row} for i, row in enumerate(rows)]
    return conform(pl.from_dicts(numbered, infer_schema_length=None))


def alerts(detector: Detector, batch: pl.DataFrame) -> pl.DataFrame:
    return detector.detect(batch, KeyedState(detector.keys))


def fires_on(detector: Detector, row: dict[str, Any]) -> bool:
    return alerts(detector, frame(row)).height > 0


def web_rule(selection: str, condition: str = "selection", name: str = "t_rule") -> str:
    body = textwrap.indent(textwrap.dedent(selection).strip(), " " * 8)
    return (
        f"title: Test {name}\nname: {name}\nstatus: test\nlogsource:\n    category: webserver\n"
        f"detection:\n    selection:\n{body}\n    condition: {condition}\nlevel: high\n"
    )


# -- modifiers and values --------------------------------------------------------------

B64 = base64.b64encode(b"run whoami now").decode()

#: (name, selection, a request it matches, a look-alike it must not match)
MODIFIERS: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("equals_any_case", "cs-method: POST", {"http.request.method": "post"}, {}),
    (
        "contains",
        "cs-uri-query|contains: '/etc/passwd'",
        {"url.original": "/p?f=../../ETC/passwd"},
        {"url.original": "/p?f=/etc/password"},
    ),
    (
        "startswith",
        "cs-uri-query|startswith: '/admin'",
        {"url.original": "/admin/login"},
        {"url.original": "/shop/admin"},
    ),
    (
        "endswith",
        "cs-uri-query|endswith: '.env'",
        {"url.original": "/app/.env"},
        {"url.original": "/.env.example"},
    ),
    (
        "wildcard_many",
        "cs-uri-query: '/wp-*/setup-config.php'",
        {"url.original": "/wp-admin/setup-config.php"},
        {"url.original": "/wp-admin/setup-config.php.bak"},
    ),
    (
        "wildcard_one",
        "cs-uri-query: '/item?id=?'",
        {"url.original": "/item?id=7"},
        {"url.original": "/item?id=77"},
    ),
    (
        "escaped_wildcard",
        r"cs-uri-query: '/faq\*'",
        {"url.original": "/faq*"},
        {"url.original": "/faqs"},
    ),
    (
        "regex_cased",
        r"cs-uri-query|re: 'UNION\s+SELECT'",
        {"url.original": "/?q=1 UNION SELECT 2"},
        {"url.original": "/?q=1 union select 2"},
    ),
    (
        "regex_ignore_case",
        r"cs-uri-query|re|i: 'union\s+select'",
        {"url.original": "/?q=1 UniOn  SeLeCT 2"},
        {"url.original": "/?q=union-select"},
    ),
    (
        "cased",
        "cs-user-agent|contains|cased: 'BadBot'",
        {"user_agent.original": "x BadBot/1.0"},
        {"user_agent.original": "x badbot/1.0"},
    ),
    (
        "all",
        "cs-uri-query|contains|all: ['cmd=', 'exec']",
        {"url.original": "/x?cmd=exec"},
        {"url.original": "/x?cmd=ls"},
    ),
    (
        "base64",
        "cs-uri-query|base64|contains: 'whoami'",
        {"url.original": f"/?p={base64.b64encode(b'whoami').decode()}"},
        {"url.original": "/?p=whoami"},
    ),
    (
        "base64offset",
        "cs-uri-query|base64offset|contains: 'whoami'",
        {"url.original": f"/?p={B64}"},
        {"url.original": f"/?p={base64.b64encode(b'run ls now').decode()}"},
    ),
    (
        "cidr",
        "c-ip|cidr: '198.51.100.0/24'",
        {"source.ip": "198.51.100.77"},
        {"source.ip": "198.51.10.77"},
    ),
    (
        "cidr_unaligned",
        "c-ip|cidr: '10.16.0.0/12'",
        {"source.ip": "10.31.255.1"},
        {"source.ip": "10.32.0.1"},
    ),
    (
        "null",
        "cs-referer: null",
        {"http.request.referrer": None},
        {"http.request.referrer": "https://shop.example/"},
    ),
    (
        "exists",
        "cs-referer|exists: true",
        {"http.request.referrer": "https://shop.example/"},
        {"http.request.referrer": None},
    ),
    ("number", "sc-status: 500", {"http.response.status_code": 500}, {}),
    (
        "number_list",
        "sc-status: [401, 403]",
        {"http.response.status_code": 403},
        {"http.response.status_code": 404},
    ),
    (
        "number_as_text",
        "sc-status: '500'",
        {"http.response.status_code": 500},
        {"http.response.status_code": 200},
    ),
    (
        "wildcard_on_number",
        "sc-status|startswith: '5'",
        {"http.response.status_code": 503},
        {"http.response.status_code": 404},
    ),
    (
        "gte",
        "sc-bytes|gte: 1000000",
        {"http.response.bytes": 2_000_000},
        {"http.response.bytes": 999},
    ),
    (
        "lt",
        "sc-status|lt: 300",
        {"http.response.status_code": 204},
        {"http.response.status_code": 404},
    ),
    (
        "neq",
        "sc-status|neq: 200",
        {"http.response.status_code": 500},
        {"http.response.status_code": 200},
    ),
    (
        "windash",
        "cs-uri-query|windash|contains: ' -enc '",
        {"url.original": "/run?c=powershell /enc abc"},
        {"url.original": "/run?c=powershell enc abc"},
    ),
    (
        "contract_name",
        "user_agent.original|contains: 'curl/'",
        {"user_agent.original": "curl/8.5.0"},
        {},
    ),
]


@pytest.mark.parametrize(
    ("name", "selection", "match", "benign"), MODIFIERS, ids=[m[0] for m in MODIFIERS]
)
def test_each_modifier_matches_as_sigma_means_it(
    tmp_path: Path, name: str, selection: str, match: dict[str, Any], benign: dict[str, Any]
) -> None:
    detector = one(tmp_path, web_rule(selection))
    assert fires_on(detector, request(**match))
    assert not fires_on(detector, request(**benign))


def test_keywords_are_looked_for_in_each_text_field_of_a_request(tmp_path: Path) -> None:
    detector = one(tmp_path, web_rule("- 'sqlmap'\n- '<script>'"))
    assert fires_on(detector, request(**{"user_agent.original": "sqlmap/1.7.2#stable"}))
    assert fires_on(detector, request(**{"url.original": "/?q=<SCRIPT>alert(1)"}))
    assert fires_on(detector, request(**{"http.request.referrer": "https://x/?q=<script>"}))
    assert not fires_on(detector, request(**{"url.original": "/search?q=scripts"}))


def test_keywords_with_a_modifier(tmp_path: Path) -> None:
    detector = one(tmp_path, web_rule("'|contains|all': ['${jndi:', 'ldap']"))
    assert fires_on(detector, request(**{"user_agent.original": "${jndi:ldap://x/a}"}))
    assert not fires_on(detector, request(**{"user_agent.original": "${jndi:dns://x/a}"}))


def test_a_webserver_rule_reads_web_requests_only(tmp_path: Path) -> None:
    detector = one(tmp_path, web_rule("cs-method: POST"))
    assert fires_on(detector, request(**{"http.request.method": "POST"}))
    assert not fires_on(
        detector, request(**{"http.request.method": "POST", "event.dataset": "vendor.api"})
    )


def test_an_sshd_rule_searches_the_sshd_message(tmp_path: Path) -> None:
    rule = """\
        title: Suspicious sshd error
        name: sshd_error
        logsource: {product: linux, service: sshd}
        detection:
            keywords: ['Corrupted MAC on input']
            condition: keywords
        level: medium
        """
    detector = one(tmp_path, rule)
    line = {
        "@timestamp": T0,
        "event.dataset": "system.auth",
        "host.name": "web-1",
        "process.name": "sshd",
        "message": "Corrupted MAC on input. [preauth]",
    }
    assert detector.keys == ("host.name",) and detector.category == "host"
    assert fires_on(detector, line)
    assert not fires_on(detector, {**line, "process.name": "sudo"})
    assert not fires_on(detector, {**line, "message": "Accepted publickey for deploy"})


# -- conditions ------------------------------------------------------------------------

SELECTIONS = """\
selection_post:
    cs-method: POST
selection_login:
    cs-uri-query|contains: /login
filter_missing:
    sc-status: 404
"""

#: (condition, requests that fire, requests that stay quiet); a request is (method, url, status)
CONDITIONS = [
    (
        "selection_post and selection_login",
        [("POST", "/login", 200)],
        [("GET", "/login", 200), ("POST", "/cart", 200)],
    ),
    (
        "selection_post or selection_login",
        [("GET", "/login", 200), ("POST", "/cart", 200)],
        [("GET", "/cart", 200)],
    ),
    ("selection_post and not filter_missing", [("POST", "/cart", 200)], [("POST", "/cart", 404)]),
    ("1 of selection_*", [("GET", "/login", 200), ("POST", "/cart", 200)], [("GET", "/cart", 404)]),
    (
        "all of selection_*",
        [("POST", "/login", 404)],
        [("POST", "/cart", 200), ("GET", "/login", 200)],
    ),
    ("all of them", [("POST", "/login", 404)], [("POST", "/login", 200)]),
    ("1 of them", [("GET", "/cart", 404)], [("GET", "/cart", 200)]),
    (
        "not (selection_post or selection_login)",
        [("GET", "/cart", 200)],
        [("POST", "/cart", 200), ("GET", "/login", 200)],
    ),
    (
        "selection_post and (selection_login or filter_missing)",
        [("POST", "/cart", 404)],
        [("POST", "/cart", 200), ("GET", "/cart", 404)],
    ),
    ("selection_post and not 1 of filter_*", [("POST", "/", 200)], [("POST", "/", 404)]),
    (
        "[selection_post, selection_login]",
        [("GET", "/login", 200), ("POST", "/", 200)],
        [("GET", "/", 200)],
    ),
]


def _requests(specs: list[tuple[str, str, int]]) -> list[dict[str, Any]]:
    return [
        request(
            **{
                "http.request.method": m,
                "url.original": u,
                "http.response.status_code": s,
                "source.ip": f"192.0.2.{i + 1}",
            }
        )
        for i, (m, u, s) in enumerate(specs)
    ]


@pytest.mark.parametrize(("condition", "fire", "quiet"), CONDITIONS, ids=[c[0] for c in CONDITIONS])
def test_each_condition_form_converts_and_matches(
    tmp_path: Path,
    condition: str,
    fire: list[tuple[str, str, int]],
    quiet: list[tuple[str, str, int]],
) -> None:
    rule = web_rule("", condition=condition).replace(
        "    selection:\n\n", textwrap.indent(SELECTIONS, " " * 4)
    )
    detector = one(tmp_path, rule)
    for row in _requests(fire):
        assert fires_on(detector, row), row
    for row in _requests(quiet):
        assert not fires_on(detector, row), row


def test_a_selection_that_is_a_list_of_maps_is_any_of_them(tmp_path: Path) -> None:
    detector = one(tmp_path, web_rule("- cs-method: PUT\n- cs-uri-query|endswith: '.bak'"))
    assert fires_on(detector, request(**{"http.request.method": "PUT"}))
    assert fires_on(detector, request(**{"url.original": "/config.php.bak"}))
    assert not fires_on(detector, request(**{"url.original": "/backup"}))


def test_a_detection_rule_alone_alerts_once_per_address_and_carries_its_metadata(
    tmp_path: Path,
) -> None:
    rule = web_rule("cs-uri-query|contains: '/.git/'").replace(
        "level: high\n",
        "level: critical\ntags:\n    - attack.reconnaissance\n    - attack.t1595.003\n",
    )
    detector = one(tmp_path, rule)
    assert detector.id == "sigma.t_rule" and detector.keys == ("source.ip",)
    assert detector.single_event
    assert detector.category == "scanner" and detector.spec.severity == "critical"
    assert detector.spec.technique == "T1595.003"
    probes = frame(
        *[
            request(at=i, **{"url.original": f"/.git/{p}"})
            for i, p in enumerate(["HEAD", "config"])
        ],
        request(at=3, **{"url.original": "/.git/HEAD", "source.ip": "192.0.2.50"}),
    )
    found = alerts(detector, probes)
    assert sorted(found["entity"].struct.field("source.ip").to_list()) == [
        "192.0.2.50",
        "203.0.113.9",
    ]
    assert found["rule.name"].to_list() == ["Test t_rule", "Test t_rule"]


# -- correlations ----------------------------------------------------------------------

LOGIN_FAILURE = """\
title: Failed login
name: login_failure
id: 0f4c8ad4-3c5e-4b53-9a57-2d4a6c1e0a11
logsource: {product: shopwatch}
detection:
    selection:
        event.dataset: shop.auth
        event.action: login
        event.outcome: failure
    condition: selection
level: low
"""


def correlation(body: str, *, generate: bool = False, extra: str = "") -> str:
    return (
        "title: Correlated\nname: correlated\nlevel: high\ntags: [attack.t1110]\n"
        + extra
        + "correlation:\n"
        + textwrap.indent(textwrap.dedent(body).strip(), "    ")
        + (f"\n    generate: {str(generate).lower()}\n" if generate else "\n")
    )


def login(
    at: float, ip: str = "198.51.100.4", user: str = "ann@shop.example", outcome: str = "failure"
) -> dict[str, Any]:
    return {
        "@timestamp": T0 + timedelta(seconds=at),
        "event.dataset": "shop.auth",
        "event.action": "login",
        "event.outcome": outcome,
        "source.ip": ip,
        "user.name": user,
    }


EVENT_COUNT = """\
type: event_count
rules: [login_failure]
group-by: [source.ip]
timespan: 5m
condition: {gte: 5}
"""


def test_event_count_fires_at_its_count_within_its_timespan(tmp_path: Path) -> None:
    detector = one(tmp_path, LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT))
    assert detector.id == "sigma.correlated" and detector.keys == ("source.ip",)
    assert detector.category == "brute_force" and detector.spec.technique == "T1110"
    attack = frame(*[login(20 * i) for i in range(5)])
    found = alerts(detector, attack)
    assert found.height == 1
    assert found["entity"].struct.field("source.ip").item() == "198.51.100.4"
    assert found["event.ids"].item().to_list() == [f"e{i}" for i in range(5)]
    assert found["severity"].item() == "high"


def test_event_count_stays_quiet_on_its_look_alike(tmp_path: Path) -> None:
    detector = one(tmp_path, LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT))
    # four mistypes then a success, and five failures spread over half an hour
    office = [login(10 * i) for i in range(4)] + [login(50, outcome="success")]
    slow = [login(400 * i, ip="198.51.100.99") for i in range(5)]
    assert alerts(detector, frame(*office, *slow)).height == 0


def test_gt_fires_one_event_later_than_gte(tmp_path: Path) -> None:
    rule = LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT.replace("gte: 5", "gt: 4"))
    detector = one(tmp_path, rule)
    assert alerts(detector, frame(*[login(i) for i in range(4)])).height == 0
    assert alerts(detector, frame(*[login(i) for i in range(5)])).height == 1


def test_the_same_events_in_one_batch_or_one_by_one_give_the_same_alert(tmp_path: Path) -> None:
    detector = one(tmp_path, LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT))
    events = frame(*[login(30 * i) for i in range(8)])
    state = KeyedState(detector.keys)
    split = pl.concat([detector.detect(events.slice(i, 1), state) for i in range(events.height)])
    assert split.drop("details").equals(alerts(detector, events).drop("details"))


def test_a_correlated_rule_is_silent_unless_generate(tmp_path: Path) -> None:
    quiet, errors = convert(tmp_path / "a", LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT))
    loud, more = convert(
        tmp_path / "b", LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT, generate=True)
    )
    assert errors == more == []
    assert sorted(quiet) == ["sigma.correlated"]
    assert sorted(loud) == ["sigma.correlated", "sigma.login_failure"]
    assert loud["sigma.login_failure"].single_event


def test_rules_are_referenced_by_id_and_across_files(tmp_path: Path) -> None:
    body = EVENT_COUNT.replace("[login_failure]", "[0f4c8ad4-3c5e-4b53-9a57-2d4a6c1e0a11]")
    detector = one(tmp_path, LOGIN_FAILURE, correlation(body))
    assert alerts(detector, frame(*[login(i) for i in range(5)])).height == 1


def test_event_count_over_webserver_names_groups_by_the_mapped_field(tmp_path: Path) -> None:
    missing = web_rule("sc-status: 404", name="not_found")
    body = (
        "type: event_count\nrules: [not_found]\ngroup-by: [c-ip]\ntimespan: 1m\ncondition: {gte: 3}"
    )
    detector = one(tmp_path, missing + "---\n" + correlation(body))
    assert detector.keys == ("source.ip",) and detector.category == "brute_force"
    sweep = [
        request(at=i, **{"http.response.status_code": 404, "url.original": f"/{i}"})
        for i in range(3)
    ]
    assert alerts(detector, frame(*sweep)).height == 1
    browsing = [request(at=i, **{"url.original": f"/{i}"}) for i in range(5)]
    assert alerts(detector, frame(*sweep[:2], *browsing)).height == 0


def test_event_count_without_group_by_counts_the_whole_shop(tmp_path: Path) -> None:
    body = "type: event_count\nrules: [login_failure]\ntimespan: 1m\ncondition: {gte: 3}"
    detector = one(tmp_path, LOGIN_FAILURE + "---\n" + correlation(body))
    spread = [login(i, ip=f"192.0.2.{i}") for i in range(3)]
    assert detector.keys == ("global",)
    assert alerts(detector, frame(*spread)).height == 1
    assert alerts(detector, frame(*spread[:2])).height == 0


LOGIN_ATTEMPT = (
    LOGIN_FAILURE.replace("login_failure", "login_attempt")
    .replace("        event.outcome: failure\n", "")
    .replace("id: 0f4c8ad4-3c5e-4b53-9a57-2d4a6c1e0a11\n", "")
)

VALUE_COUNT = """\
type: value_count
rules: [login_attempt]
group-by: [source.ip]
timespan: 10m
condition: {gte: 4, field: user.name}
"""


def test_value_count_fires_on_distinct_values(tmp_path: Path) -> None:
    detector = one(tmp_path, LOGIN_ATTEMPT + "---\n" + correlation(VALUE_COUNT))
    stuffing = [login(i, user=f"user{i}@mail.example") for i in range(4)]
    found = alerts(detector, frame(*stuffing))
    assert found.height == 1
    assert "4 distinct user.name" in found["message"].item()


def test_value_count_stays_quiet_on_one_account_retried(tmp_path: Path) -> None:
    detector = one(tmp_path, LOGIN_ATTEMPT + "---\n" + correlation(VALUE_COUNT))
    family = [login(i, user="ann@shop.example") for i in range(10)] + [
        login(20, user="bob@shop.example")
    ]
    assert alerts(detector, frame(*family)).height == 0


RESET = """\
title: Password reset requested
name: reset_request
logsource: {product: shopwatch}
detection:
    selection: {event.dataset: shop.auth, event.action: password_reset_request}
    condition: selection
---
title: E-mail changed
name: email_change
logsource: {product: shopwatch}
detection:
    selection: {event.dataset: shop.account, event.action: email_change}
    condition: selection
"""


def account(at: float, action: str, user: str = "ann@shop.example") -> dict[str, Any]:
    dataset = "shop.auth" if action == "password_reset_request" else "shop.account"
    return {
        "@timestamp": T0 + timedelta(minutes=at),
        "event.dataset": dataset,
        "event.action": action,
        "user.name": user,
        "source.ip": "198.51.100.20",
    }


def temporal(kind: str) -> str:
    return correlation(
        f"type: {kind}\nrules: [reset_request, email_change]\ngroup-by: [user.name]\ntimespan: 1h"
    )


def test_temporal_ordered_fires_on_its_steps_in_order(tmp_path: Path) -> None:
    detector = one(tmp_path, RESET + "---\n" + temporal("temporal_ordered"))
    assert detector.spec.kind == "sequence" and detector.keys == ("user.name",)
    found = alerts(
        detector, frame(account(0, "password_reset_request"), account(20, "email_change"))
    )
    assert found.height == 1
    assert found["entity"].struct.field("user.name").item() == "ann@shop.example"


def test_temporal_ordered_stays_quiet_out_of_order_or_out_of_time(tmp_path: Path) -> None:
    detector = one(tmp_path, RESET + "---\n" + temporal("temporal_ordered"))
    backwards = frame(account(0, "email_change"), account(20, "password_reset_request"))
    late = frame(account(0, "password_reset_request"), account(90, "email_change"))
    assert alerts(detector, backwards).height == 0
    assert alerts(detector, late).height == 0


def test_temporal_fires_in_any_order_but_not_on_one_step(tmp_path: Path) -> None:
    detector = one(tmp_path, RESET + "---\n" + temporal("temporal"))
    backwards = frame(account(0, "email_change"), account(20, "password_reset_request"))
    assert alerts(detector, backwards).height == 1
    twice = frame(account(0, "email_change"), account(20, "email_change"))
    assert alerts(detector, twice).height == 0
    two_people = frame(account(0, "email_change"), account(5, "password_reset_request", "bob@x"))
    assert alerts(detector, two_people).height == 0


def aliased(second: str) -> str:
    """A temporal correlation keyed by an alias: user.name in one rule, ``second`` in the other."""
    return correlation(
        "type: temporal\nrules: [reset_request, email_change]\ngroup-by: [who]\ntimespan: 1h\n"
        f"aliases:\n    who:\n        reset_request: user.name\n        email_change: {second}"
    )


def test_a_group_by_alias_naming_one_field_is_that_field(tmp_path: Path) -> None:
    detector = one(tmp_path, RESET + "---\n" + aliased("user.name"))
    assert detector.keys == ("user.name",)


# -- refusals --------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["lt", "lte", "eq"])
def test_less_than_and_equal_counts_are_refused(tmp_path: Path, op: str) -> None:
    body = EVENT_COUNT.replace("gte: 5", f"{op}: 5")
    err = refused(tmp_path, LOGIN_FAILURE + "---\n" + correlation(body))
    assert "absence detection" in str(err) and f"'{op}: 5'" in str(err)


def test_sums_and_averages_are_refused(tmp_path: Path) -> None:
    body = VALUE_COUNT.replace("value_count", "value_sum").replace("user.name", "shop.order.amount")
    err = refused(tmp_path, LOGIN_ATTEMPT + "---\n" + correlation(body))
    assert "value_sum" in str(err) and "does not sum" in str(err)


def test_a_temporal_correlation_needs_a_group_by(tmp_path: Path) -> None:
    body = "type: temporal\nrules: [reset_request, email_change]\ntimespan: 1h"
    assert "needs a group-by" in str(refused(tmp_path, RESET + "---\n" + correlation(body)))


def test_a_temporal_correlation_of_some_of_its_rules_is_refused(tmp_path: Path) -> None:
    body = "type: temporal\nrules: [reset_request, email_change]\ngroup-by: [user.name]\ntimespan: 1h\ncondition: {gte: 1}"
    assert "needs 1 of its 2 rules" in str(refused(tmp_path, RESET + "---\n" + correlation(body)))


def test_an_extended_temporal_condition_is_refused(tmp_path: Path) -> None:
    body = "type: temporal\ngroup-by: [user.name]\ntimespan: 1h\ncondition: reset_request and not email_change"
    assert "extended" in str(refused(tmp_path, RESET + "---\n" + correlation(body)))


def test_a_group_by_alias_over_different_fields_is_refused(tmp_path: Path) -> None:
    assert "different field" in str(refused(tmp_path, RESET + "---\n" + aliased("source.ip")))


def test_a_correlation_of_correlations_is_refused(tmp_path: Path) -> None:
    outer = correlation(
        "type: event_count\nrules: [correlated]\ntimespan: 1h\ncondition: {gte: 2}"
    ).replace("name: correlated", "name: outer")
    detectors, errors = convert(tmp_path, LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT), outer)
    assert "sigma.correlated" in detectors and "sigma.outer" not in detectors
    assert len(errors) == 1 and "another correlation" in str(errors[0])


def test_an_unknown_reference_is_an_error(tmp_path: Path) -> None:
    err = refused(tmp_path, correlation(EVENT_COUNT.replace("login_failure", "nowhere")))
    assert "nowhere" in str(err) and "not found" in str(err)


#: (name, selection, words of the error)
UNSUPPORTED = [
    (
        "unmapped_field",
        "cs-content-type: text/html",
        "'cs-content-type' is not in the event contract",
    ),
    ("field_reference", "cs-referer|fieldref: cs-host", "field references"),
    ("placeholder", "cs-uri-query|expand: '%admin_paths%'", "placeholder %admin_paths%"),
    ("timestamp_part", "sc-status|hour: 3", "timestamp part"),
    ("bad_modifier", "cs-uri-query|sounds_like: x", "not a valid Sigma rule"),
    ("look_around", "cs-uri-query|re: 'union(?=\\s+select)'", "union(?=\\s+select)"),
    # pySigma's own check (RE2) accepts \C; Polars, which runs the rule, does not
    ("engine_refuses_regex", "cs-uri-query|re: 'union\\Cselect'", "refused by the Polars"),
]


@pytest.mark.parametrize(
    ("name", "selection", "words"), UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED]
)
def test_unsupported_detections_are_errors_naming_file_and_construct(
    tmp_path: Path, name: str, selection: str, words: str
) -> None:
    err = refused(tmp_path, web_rule(selection))
    assert words in str(err)
    assert "\n" not in str(err)


def test_the_error_names_the_line_of_the_selection(tmp_path: Path) -> None:
    rule = (
        web_rule("cs-method: GET")
        .replace("    condition:", "    sel_bad:\n        cs-content-type: x\n    condition:")
        .replace("condition: selection", "condition: selection and sel_bad")
    )
    err = refused(tmp_path, rule)
    line = rule.splitlines().index("    sel_bad:") + 1
    assert err.where.endswith(f"rule0.yml:{line}")


def test_a_proxy_rule_is_refused_for_a_field_our_outbound_calls_do_not_carry(
    tmp_path: Path,
) -> None:
    rule = web_rule("cs-cookie|contains: 'SESSIONID='").replace("webserver", "proxy")
    assert "'cs-cookie' is not in the event contract" in str(refused(tmp_path, rule))


def test_a_rule_of_a_log_source_shopwatch_does_not_read_names_it(tmp_path: Path) -> None:
    rule = web_rule("verb: delete").replace(
        "category: webserver", "product: kubernetes\n    service: audit"
    )
    error = str(refused(tmp_path, rule))
    assert "log source product kubernetes, service audit is not one shopwatch ingests" in error
    assert "webserver" in error and "proxy" in error  # what it does read


def test_keywords_without_fields_to_search_are_refused(tmp_path: Path) -> None:
    rule = web_rule("- 'boom'").replace("category: webserver", "product: shopwatch")
    assert "keyword search" in str(refused(tmp_path, rule))


@pytest.mark.parametrize(
    ("document", "words"),
    [
        ("action: global\nlogsource: {category: webserver}\n", "collection actions"),
        (
            "title: F\nfilter:\n    rules: [x]\n    selection: {c-ip: 1.2.3.4}\n    condition: not selection\nlogsource: {category: webserver}\n",
            "meta filters",
        ),
    ],
    ids=["action", "filter"],
)
def test_collection_actions_and_meta_filters_are_refused(
    tmp_path: Path, document: str, words: str
) -> None:
    assert words in str(refused(tmp_path, document))


def test_a_correlation_over_a_rule_that_fails_names_both(tmp_path: Path) -> None:
    broken = LOGIN_FAILURE.replace("event.outcome: failure", "event.mood: grumpy")
    detectors, errors = convert(tmp_path, broken, correlation(EVENT_COUNT))
    assert not detectors
    assert {Path(e.where.split(":")[0]).name for e in errors} == {"rule0.yml", "rule1.yml"}
    assert any("'event.mood'" in str(e) for e in errors)
    assert any("'login_failure'" in str(e) and "rule0.yml" in str(e) for e in errors)


# -- the load path: lint and the engine --------------------------------------------------


def test_load_detectors_loads_sigma_beside_our_rules(tmp_path: Path) -> None:
    shipped = {d.id for d in load_detectors().detectors}
    folder = tmp_path / "rules" / "sigma"
    folder.mkdir(parents=True)
    (folder / "good.yml").write_text(web_rule("cs-method: TRACE", name="trace"), encoding="utf-8")
    (folder / "bad.yml").write_text(web_rule("cs-cookie: x", name="cookie"), encoding="utf-8")
    loaded = load_detectors([tmp_path / "rules"])
    assert {d.id for d in loaded.detectors} == shipped | {"sigma.trace"}
    assert len(loaded.errors) == 1 and loaded.errors[0].where.startswith(str(folder / "bad.yml"))
    assert loaded.sources["sigma.trace"] == str(folder / "good.yml")


def test_config_tunes_a_sigma_rule_by_id(tmp_path: Path) -> None:
    class Override:
        enabled = True
        params: ClassVar[dict[str, Any]] = {"severity": "low", "group_by": ["user.name"]}

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "r.yml").write_text(web_rule("cs-method: TRACE", name="trace"), encoding="utf-8")
    loaded = load_detectors([folder], {"sigma.trace": Override()})
    (detector,) = [d for d in loaded.detectors if d.id == "sigma.trace"]
    assert detector.spec.severity == "low" and detector.keys == ("user.name",)


def test_rules_lint_reports_a_bad_sigma_rule(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from shopwatch.cli.main import app

    folder = tmp_path / "rules"
    folder.mkdir()
    (folder / "good.yml").write_text(web_rule("cs-method: TRACE", name="trace"), encoding="utf-8")
    clean = CliRunner().invoke(app, ["rules", "lint", "--rules-dir", str(folder)])
    assert clean.exit_code == 0, clean.output
    (folder / "bad.yml").write_text(
        LOGIN_FAILURE + "---\n" + correlation(EVENT_COUNT.replace("gte", "lt")), encoding="utf-8"
    )
    dirty = CliRunner().invoke(app, ["rules", "lint", "--rules-dir", str(folder)])
    assert dirty.exit_code == 1
    assert "bad.yml" in dirty.output and "absence detection" in dirty.output


def _doc_examples() -> list[str]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOCS.read_text(encoding="utf-8"), re.DOTALL)
    return [b for b in blocks if "correlation:" in b]


def test_the_examples_in_the_sigma_docs_convert(tmp_path: Path) -> None:
    examples = _doc_examples()
    assert len(examples) == 2, "docs/sigma.md shows two correlation examples"
    detectors, errors = convert(tmp_path, *examples)
    assert errors == []
    assert {d: x.category for d, x in detectors.items()} == {
        "sigma.shop_probe_then_login": "account_takeover",
        "sigma.shop_promo_enumeration": "promo_abuse",
    }


def test_the_docs_probe_then_login_example_fires_on_its_attack_only(tmp_path: Path) -> None:
    detector = one(tmp_path, _doc_examples()[0])
    probe = request(**{"url.original": "/.env", "source.ip": "198.51.100.4"})
    success = login(600, outcome="success")
    assert alerts(detector, frame(probe, success)).height == 1
    customer = request(**{"url.original": "/account", "source.ip": "198.51.100.4"})
    assert alerts(detector, frame(customer, success)).height == 0
    assert (
        alerts(detector, frame(success, {**probe, "@timestamp": T0 + timedelta(hours=1)})).height
        == 0
    )


def test_a_rule_names_its_own_key_and_category(tmp_path: Path) -> None:
    rule = web_rule("cs-method: TRACE").replace(
        "level: high", "level: high\nshopwatch.group_by: user.name\nshopwatch.category: scanner"
    )
    detector = one(tmp_path, rule)
    assert detector.keys == ("user.name",) and detector.category == "scanner"


# -- SigmaHQ's own web rules -------------------------------------------------------------


def _sigmahq() -> Path:
    root = os.environ.get("SHOPWATCH_DATASETS")
    if not root or not (Path(root) / "sigma").is_dir():
        pytest.skip("SHOPWATCH_DATASETS is not set (or has no sigma/): SigmaHQ rules absent")
    return Path(root) / "sigma"


def test_most_sigmahq_webserver_rules_convert(capsys: pytest.CaptureFixture[str]) -> None:
    sigma = _sigmahq()
    folders = [sigma / "rules" / "web" / "webserver_generic", sigma / "rules-emerging-threats"]
    files = [
        p
        for f in folders
        for p in sorted(f.rglob("*.yml"))
        if "category: webserver" in p.read_text()
    ]
    rules, errors = read_rule_files(folders)
    built: list[Detector] = []
    for rule in rules.values():
        try:
            built.append(build(rule.raw, rule.path, rule.lines))
        except ContentError as err:
            errors.append(err)
    web = [d for d in built if "http.access" in str(getattr(d.spec, "where", ""))]
    with capsys.disabled():
        print(f"\nSigmaHQ webserver rules: {len(web)} of {len(files)} convert")
        for err in errors:
            print(f"  refused: {Path(err.where).name}: {str(err).split(': ', 2)[-1]}")
    assert len(web) >= 0.9 * len(files)
    assert all(isinstance(e, ContentError) for e in errors)


def test_the_converters_doctests_hold() -> None:
    import doctest

    from shopwatch.detect import sigma_meta, sigma_where

    for module in (sigma_meta, sigma_where):
        assert doctest.testmod(module).failed == 0, module.__name__
