"""ECS NDJSON parser: nested and dotted keys, casts, rejects, round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shopwatch.contract import EVENT_SCHEMA
from shopwatch.parse import ParseContext
from shopwatch.parse.ecs import parse_ecs
from tests.parse.helpers import frame, parse_all, row

CTX = ParseContext(source="events.jsonl")


def test_fixture(fixtures_dir: Path) -> None:
    parsed = parse_all(fixtures_dir / "ecs" / "events.jsonl", "ecs")
    assert parsed.batch.schema == pl.Schema(EVENT_SCHEMA)
    assert parsed.rejects.select("line_no", "reason").rows() == [
        (5, "missing_field"),
        (6, "bad_timestamp"),
        (7, "not_an_object"),
        (8, "invalid_json"),
    ]
    login = row(parsed, 1)
    assert login["@timestamp"] == datetime(2024, 3, 12, 8, 15, 3, 120000, tzinfo=UTC)
    assert (login["source.ip"], login["source.port"], login["user.name"]) == (
        "203.0.113.7",
        52114,
        "mia@example.com",
    )
    assert login["event.id"] == "events.jsonl:1"
    pay = row(parsed, 2)
    assert pay["@timestamp"] == datetime(2024, 3, 12, 8, 15, 4, tzinfo=UTC)  # epoch milliseconds
    assert (
        pay["shop.payment.amount"],
        pay["shop.payment.card.bin"],
        pay["shop.payment.card.last4"],
    ) == (1.0, "411111", "1111")
    assert pay["shop.payment.card.fingerprint"] == "fp-9a1c"
    assert pay["shop.payment.decline_code"] == "incorrect_cvc"
    cart = parsed.batch.filter(pl.col("event.id").eq("evt-000123")).row(0, named=True)
    assert cart["shop.product.price"] == 19.9 and cart["shop.cart.quantity"] == 3
    assert (
        cart["source.port"] is None and cart["source.ip"] == "192.0.2.10"
    )  # "abc" cannot be a port
    export = row(parsed, 4)
    assert export["user.roles"] == "support,export"
    assert export["shop.data.records"] == 25_000


def test_mixed_forms_in_one_object() -> None:
    line = json.dumps(
        {
            "@timestamp": "2024-01-01T00:00:00-05:00",
            "event.dataset": "shop.auth",
            "event": {"action": "login", "outcome": "success"},
            "source": {"ip": "1.2.3.4", "geo.country_iso_code": "DE"},
            "source.port": 443,
            "user_agent": {"headless": "true", "bot.verified": False},
            "event.duration": 1.5e3,
            "http": {"response": {"status_code": "404"}},
        }
    )
    got = row(parse_ecs(frame([line]), CTX), 1)
    assert got["@timestamp"] == datetime(2024, 1, 1, 5, tzinfo=UTC)
    assert (got["event.action"], got["event.outcome"]) == ("login", "success")
    assert (got["source.ip"], got["source.port"], got["source.geo.country_iso_code"]) == (
        "1.2.3.4",
        443,
        "DE",
    )
    assert (got["user_agent.headless"], got["user_agent.bot.verified"]) == (True, False)
    assert got["event.duration"] == 1500
    assert got["http.response.status_code"] == 404


def test_rejects_and_empty() -> None:
    lines = [
        "",
        "{",
        "42",
        "null",
        '{"event.dataset": "x"}',
        '{"@timestamp": "2024-01-01T00:00:00Z"}',
        '{"@timestamp": true, "event.dataset": "x"}',
    ]
    parsed = parse_ecs(frame(lines), CTX)
    assert parsed.batch.height == 0 and parsed.batch.schema == pl.Schema(EVENT_SCHEMA)
    assert parsed.rejects["reason"].to_list() == [
        "empty",
        "invalid_json",
        "not_an_object",
        "not_an_object",
        "missing_field",
        "missing_field",
        "bad_timestamp",
    ]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(), max_size=12))
def test_any_text_keeps_the_invariant(lines: list[str]) -> None:
    lines = [s.replace("\n", " ").replace("\r", " ") for s in lines]
    parsed = parse_ecs(frame(lines), CTX)
    assert parsed.batch.height + parsed.rejects.height == len(lines)


_VALUES = {
    "event.action": st.text(max_size=10),
    "source.ip": st.ip_addresses().map(str),
    "source.port": st.integers(0, 65535),
    "user.name": st.text(max_size=20),
    "shop.payment.amount": st.floats(0, 1e6, allow_nan=False),
    "shop.payment.card.last4": st.from_regex(r"\d{4}", fullmatch=True),
    "user_agent.headless": st.booleans(),
}


def _nest(flat: dict[str, Any], draw: st.DrawFn) -> dict[str, Any]:
    """Render dotted keys with a random mix of nesting."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        parts = key.split(".")
        cut = draw(st.integers(0, len(parts) - 1))
        node = out
        for part in parts[:cut]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[".".join(parts[cut:])] = value
            continue
        out[key] = value
    return out


@st.composite
def _events(draw: st.DrawFn) -> dict[str, Any]:
    flat: dict[str, Any] = {
        "@timestamp": draw(
            st.datetimes(
                min_value=datetime(1971, 1, 1),
                max_value=datetime(2200, 1, 1),
                timezones=st.just(UTC),
            )
        ),
        "event.dataset": draw(st.sampled_from(["shop.auth", "shop.payment", "vendor.api"])),
    }
    for key in draw(st.lists(st.sampled_from(sorted(_VALUES)), unique=True)):
        flat[key] = draw(_VALUES[key])
    flat["_nested"] = _nest(
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in flat.items()}, draw
    )
    return flat


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_events(), min_size=1, max_size=6))
def test_rendered_events_parse_back(events: list[dict[str, Any]]) -> None:
    parsed = parse_ecs(frame(json.dumps(e["_nested"]) for e in events), CTX)
    assert parsed.rejects.height == 0
    for got, e in zip(parsed.batch.iter_rows(named=True), events, strict=True):
        for key, value in e.items():
            if key != "_nested":
                assert got[key] == value, key
