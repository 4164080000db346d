"""Per-field exemptions of web signatures: learned from answered requests, never global."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl

from shopwatch.config import Settings
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.exemptions import EXEMPT_STATE, ExemptionRules, fields_of, masked
from shopwatch.pipeline.build import build_engine
from shopwatch.pipeline.engine import Engine
from shopwatch.pipeline.merge import expand_matches

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
        engine, *[request(ip, "/api/reviews", {"text": SQL_BOOK}, status=403) for ip in networks(12)]
    )
    assert "web.sqli_probe" in rules_of(fired(engine, review("84.1.2.3", SQL_BOOK)))


def test_a_match_that_needs_two_fields_teaches_nothing() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    spread = "/search?a=select+x&b=from+y&c=where+z"  # select .. from .. where, over 3 fields
    fired(engine, *[request(ip, spread, status=200) for ip in networks(12)])
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.3", spread, status=200)))


def test_a_path_many_readers_open_is_exempt_but_its_query_is_not() -> None:
    engine = Engine(WEB, exemptions=ExemptionRules())
    post = "/blog/how-to-select-a-tent-from-our-range-where-it-rains"
    fired(engine, *[request(ip, post, status=200) for ip in networks(12)])
    assert fired(engine, request("84.1.2.3", post, status=200)) == {}
    attack = post + "?ref=1%27+union+select+password+from+users--"
    assert "web.sqli_probe" in rules_of(fired(engine, request("84.1.2.4", attack, status=200)))


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
    assert fields_of("/api/orders/17/notes", body) == ["path", "body:note"]
    target, blanked = masked("/api/orders/17/notes", body, ["body:note"])
    assert target == "/api/orders/17/notes"
    assert json.loads(blanked or "") == {"order": {"note": "", "lines": [{"note": ""}]}, "n": 3}
    form = "name=Ann&comment=it%27s+%27grand%27+--+ok"
    assert fields_of("/contact", form) == ["path", "body:name", "body:comment"]
    assert masked("/contact", form, ["body:comment"]) == ("/contact", "name=Ann&comment=")
    # a name written encoded is the same field
    assert masked("/s?%71=1%27&p=2", None, ["query:q"]) == ("/s?%71=&p=2", None)
