"""Outbound personal data (vendor.data_leak) and new vendors (vendor.new_vendor)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from shopwatch.config import Settings
from shopwatch.contract import conform
from shopwatch.detect.content import load_detectors
from shopwatch.detect.personal import luhn_ok, mask, plausible_card, scan
from shopwatch.detect.state import KeyedState
from shopwatch.detect.vendors import load_inventory
from shopwatch.errors import ConfigError
from shopwatch.pipeline.build import use_vendor_inventory

T0 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
DETECTORS = {d.id: d for d in load_detectors(sigma_rules=False).detectors}

INVENTORY = """\
vendors:
  stripe: {domains: [api.stripe.com], receives: [email, phone]}
  sendgrid: {domains: [api.sendgrid.com], receives: [email]}
  dhl: {domains: [dhl.com], receives: [email, phone]}
  google-analytics: {domains: [www.google-analytics.com]}
"""


def call(
    at: datetime,
    vendor: str | None,
    domain: str,
    *,
    query: str | None = None,
    body: str | None = None,
    n: int = 0,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "@timestamp": at,
        "event.id": f"v{n:05d}-{at.timestamp():.0f}",
        "event.dataset": "vendor.api",
        "event.action": "request",
        "host.name": "app-1",
        "url.domain": domain,
        "destination.domain": domain,
        "url.full": f"https://{domain}/v1" + (f"?{query}" if query else ""),
        "url.query": query,
        "http.request.body.content": body,
        "shop.vendor.name": vendor,
    }
    return row


def frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    return conform(pl.DataFrame(rows, infer_schema_length=None))


@pytest.fixture
def inventory_file(tmp_path: Path) -> Path:
    path = tmp_path / "vendors.yaml"
    path.write_text(INVENTORY)
    return path


def fresh(rule_id: str, inventory: Path | None = None) -> Any:
    found = {d.id: d for d in load_detectors(sigma_rules=False).detectors}[rule_id]
    if inventory is not None:
        use_vendor_inventory([found], Settings(detect={"vendor_inventory": inventory}))
    return found


# ---------------------------------------------------------------- personal data


@pytest.mark.parametrize(
    ("text", "kind", "masked"),
    [
        ("em=jane.doe%40gmail.com&cc=DE", "email", "j***@g***.com"),
        ('{"email":"jan.novak\\u0040seznam.cz"}', "email", "j***@s***.cz"),
        ("u=%3Femail%3Dmax%2540web.de", "email", "m***@w***.de"),
        ('{"card":"4111 1111 1111 1111"}', "card", "411111******1111"),
        ("pan=5555-5555-5555-4444", "card", "555555******4444"),
        ("pan=378282246310005", "card", "***********0005"),
        ("pan=2223003122003222", "card", "222300******3222"),
        ("sid=1&phone=%2B49%20151%2023456789", "phone", "+49*********89"),
        ("call 0044 20 7946 0018 now", "phone", "+44********18"),
        ("key=AKIAIOSFODNN7EXAMPLE", "secret", "AKIA…(20 characters)"),
        ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "secret", "sk_l…(32 characters)"),
        ("ghp_" + "a1B2" * 9, "secret", "ghp_…(40 characters)"),
        ("-----BEGIN RSA PRIVATE KEY-----\nMIIE", "secret", "PEM private key"),
    ],
)
def test_scan_finds_each_kind(text: str, kind: str, masked: str) -> None:
    found = scan(text)
    assert found.counts == {kind: 1}
    assert found.samples[kind] == [masked]


@pytest.mark.parametrize(
    "text",
    [
        "oid=NH-48213377&value=59.90&ts=1773133200000",  # an order id, epoch milliseconds
        "cid=4929181203123457",  # 16 digits starting with 4 that fail Luhn
        "ref=1234567812345670",  # Luhn-valid, but no issuer starts with 12
        '{"em_sha256":"a2f4e1b7c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d5e4f3"}',
        '{"@context":"https://schema.org","author":"@nordhaven_support"}',
        "start_date=2026-03-01&end_date=2026-03-10",
        "sku=0151234567&gtin=4006381333931",  # a national-looking number outside a phone field
        "key=pk_test_51H8dummyPublishableKey",  # a publishable test key is no secret
        "v=1.2.3.4567890123456",  # digits glued to a version number
        "",
    ],
)
def test_scan_ignores_look_alikes(text: str) -> None:
    assert not scan(text), scan(text).counts


def test_phone_fields_read_national_numbers_only_with_a_region() -> None:
    assert not scan("tel=0151 23456789")
    assert scan("tel=0151 23456789", region="DE").counts == {"phone": 1}
    assert not scan("tel=12345", region="DE")  # too short to be a number anywhere


def test_counts_each_value_once_and_keeps_few_samples() -> None:
    emails = "&".join(f"e{i}={'abcdef'[i]}user%40example.com" for i in range(6))
    found = scan(emails + "&again=buser@example.com")
    assert found.counts == {"email": 6}
    assert len(found.samples["email"]) == 3


def test_luhn_and_issuer() -> None:
    assert luhn_ok("79927398713") and not luhn_ok("79927398710")
    assert plausible_card("6011111111111117")  # Discover
    assert not plausible_card("4111111111111")  # Visa prefix, Luhn fails at 13 digits
    assert not plausible_card("51051051051051")  # Mastercard prefix, wrong length
    assert mask("card", "4111-1111-1111-1111") == "411111******1111"


# ---------------------------------------------------------------- vendor.data_leak


def test_leak_without_inventory_fires_once_per_vendor_per_window() -> None:
    det = fresh("vendor.data_leak")
    rows = [
        call(T0 + timedelta(minutes=m), "adsync", "t.adsync-cdn.net", query=f"em=u{m}%40x.de", n=m)
        for m in range(0, 130, 10)
    ]
    alerts = det.detect(frame(rows), KeyedState(det.keys))
    assert alerts["@timestamp"].to_list() == [
        T0,
        T0 + timedelta(minutes=60),
        T0 + timedelta(minutes=120),
    ]
    details = json.loads(alerts.item(0, "details"))
    assert details["counts"] == {"email": 1} and details["in_inventory"] is False
    assert "u0@x.de" not in alerts.item(0, "message") + alerts.item(0, "details")


def test_alerts_do_not_depend_on_batch_cuts() -> None:
    det = fresh("vendor.data_leak")
    rows = [
        call(T0 + timedelta(minutes=7 * m), v, f"{v}.example", body=f"email=a{m}@b.de", n=m)
        for m in range(30)
        for v in ("adsync", "pixelpulse")
    ]
    whole = det.detect(frame(rows), KeyedState(det.keys))
    state = KeyedState(det.keys)
    parts = [det.detect(frame(rows[i : i + 7]), state) for i in range(0, len(rows), 7)]
    cut = pl.concat([p for p in parts if p.height])
    assert sorted(cut["alert.id"].to_list()) == sorted(whole["alert.id"].to_list())
    assert whole.height == 2 * 4  # 0-59, 63-119, 126-182, 189-203 minutes, per vendor


def test_inventory_allows_what_a_vendor_may_receive(inventory_file: Path) -> None:
    det = fresh("vendor.data_leak", inventory_file)
    rows = [
        call(T0, "sendgrid", "api.sendgrid.com", body='{"to":"jane@example.com"}', n=1),
        call(T0, None, "eu.api.dhl.com", body="phone=%2B4915123456789&email=a@b.de", n=2),
        call(T0, "google-analytics", "www.google-analytics.com", query="uid=u1&em=a%40b.de", n=3),
        call(
            T0,
            "sendgrid",
            "api.sendgrid.com",
            body='{"to":"x@y.de","card":"4111111111111111"}',
            n=4,
        ),
        call(T0, "newpixel", "px.newpixel.io", query="e=jane%40example.com", n=5),
    ]
    alerts = det.detect(frame(rows), KeyedState(det.keys))
    got = {r["entity"]["shop.vendor.name"]: r for r in alerts.iter_rows(named=True)}
    assert set(got) == {"google-analytics", "sendgrid", "newpixel"}
    sendgrid = json.loads(got["sendgrid"]["details"])
    assert sendgrid["counts"] == {"card": 1}  # the e-mail it may receive is not counted
    assert got["sendgrid"]["severity"] == "critical"
    assert "allows email" in got["sendgrid"]["message"]
    assert "allows nothing personal" in got["google-analytics"]["message"]
    assert "not in the vendor inventory" in got["newpixel"]["message"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("vendors: [a, b]", "expected a mapping"),
        ("vendors:\n  x: {receives: [ssn]}", "unknown kinds ['ssn']"),
        ("vendors:\n  x: {domain: [a.com]}", "unknown keys ['domain']"),
        ("vendors: {x: [", "not YAML"),
    ],
)
def test_a_bad_inventory_is_a_clear_error(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "v.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        load_inventory(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_inventory(tmp_path / "missing.yaml")


# ---------------------------------------------------------------- vendor.new_vendor


def usual(days: int, start: datetime = T0) -> list[dict[str, Any]]:
    return [
        call(start + timedelta(days=d, hours=h), v, dom, n=d * 100 + h)
        for d in range(days)
        for h in (1, 9, 17)
        for v, dom in (("stripe", "api.stripe.com"), ("sendgrid", "api.sendgrid.com"))
    ]


def test_learned_mode_needs_a_settled_week_and_forgets_after_90_days() -> None:
    det = fresh("vendor.new_vendor")
    state = KeyedState(det.keys)
    early = [*usual(3), call(T0 + timedelta(days=2), "algolia", "x.algolia.net", n=9)]
    assert det.detect(frame(early), state).height == 0  # day 2: still settling
    later = [
        *usual(8, T0 + timedelta(days=3)),
        call(T0 + timedelta(days=9), "algolia", "x.algolia.net", n=10),
        call(T0 + timedelta(days=9, minutes=1), "adsync", "t.adsync-cdn.net", n=11),
        call(T0 + timedelta(days=9, minutes=2), "adsync", "t.adsync-cdn.net", n=12),
    ]
    alerts = det.detect(frame(later), state)
    assert alerts["entity"].struct.field("shop.vendor.name").to_list() == ["adsync"]
    # algolia called again after 100 days of silence is new again; stripe, called all along, not
    back = T0 + timedelta(days=110)
    quiet = [call(T0 + timedelta(days=d), "stripe", "api.stripe.com", n=d) for d in range(10, 111)]
    again = det.detect(frame([*quiet, call(back, "algolia", "x.algolia.net", n=99)]), state)
    assert again["entity"].struct.field("shop.vendor.name").to_list() == ["algolia"]


def test_inventory_mode_fires_at_once_and_reminds_daily(inventory_file: Path) -> None:
    det = fresh("vendor.new_vendor", inventory_file)
    state = KeyedState(det.keys)
    rows = [
        call(T0 + timedelta(hours=h), "adsync", "t.adsync-cdn.net", n=h) for h in range(0, 50, 2)
    ] + [call(T0, "stripe", "api.stripe.com", n=100), call(T0, None, "api-eu.dhl.com", n=101)]
    alerts = det.detect(frame(rows), state)
    assert alerts["@timestamp"].to_list() == [
        T0,
        T0 + timedelta(hours=24),
        T0 + timedelta(hours=48),
    ]
    assert "does not list" in alerts.item(0, "message")
    # the next batch goes on from the last reminder
    more = det.detect(frame([call(T0 + timedelta(hours=60), "adsync", "t.adsync-cdn.net")]), state)
    assert more.height == 0
    assert (
        det.detect(
            frame([call(T0 + timedelta(hours=72), "adsync", "t.adsync-cdn.net")]), state
        ).height
        == 1
    )


def test_engine_keeps_vendor_memory_for_weeks() -> None:
    from shopwatch.pipeline.engine import Engine

    det = fresh("vendor.new_vendor")
    engine = Engine([det], [])
    assert engine.states[det.id].max_age >= timedelta(days=90)


@pytest.mark.parametrize(
    ("text", "counts"),
    [
        ('{"phone":"+4915112345009"}', {"phone": 1}),  # 13 digits after '+', Luhn-valid: no card
        ("gtin=4006381000093", {}),  # a German GTIN-13 that passes Luhn
        ("x=%2B1%20(415)%20555-2671", {"phone": 1}),
        ("tel: +44 (0)20 7946 0018", {"phone": 1}),
        ("logo@2x.png&hero@3x.webp", {}),
    ],
)
def test_scan_look_alikes_found_in_review(text: str, counts: dict[str, int]) -> None:
    assert scan(text).counts == counts


def test_phone_keys_inside_longer_names_read_with_a_region() -> None:
    assert scan("shipping_phone=030123456", region="DE").counts == {"phone": 1}
    assert scan('{"customerPhone": "0151 23456789"}', region="DE").counts == {"phone": 1}


def test_short_card_numbers_show_only_their_last_four() -> None:
    assert mask("card", "501800000009") == "********0009"


def test_a_huge_body_costs_bounded_work() -> None:
    import time

    began = time.perf_counter()
    found = scan("+1234567 " * 120_000 + "jane@example.com")
    assert time.perf_counter() - began < 2.0
    assert found.truncated and found.counts == {"email": 1}  # the tail is read


def test_the_screen_lets_through_what_the_scan_finds() -> None:
    det = fresh("vendor.data_leak")
    rows = [
        call(T0, "a", "a.example", query="x=%2B49.151.2345.6789", n=1),
        call(T0, "b", "b.example", body="key=-----BEGIN+PRIVATE+KEY-----", n=2),
        call(T0, "c", "c.example", query="cell=%2B4915123456789", n=3),
    ]
    alerts = det.detect(frame(rows), KeyedState(det.keys))
    assert sorted(alerts["entity"].struct.field("shop.vendor.name").to_list()) == ["a", "b", "c"]


def test_a_listed_name_at_an_unlisted_domain_is_not_that_vendor(inventory_file: Path) -> None:
    leak = fresh("vendor.data_leak", inventory_file)
    new = fresh("vendor.new_vendor", inventory_file)
    rows = [call(T0, "stripe", "collect.evil.example", body="email=jane@example.com", n=1)]
    alerts = leak.detect(frame(rows), KeyedState(leak.keys))
    assert alerts.height == 1
    assert "does not list collect.evil.example" in alerts.item(0, "message")
    assert new.detect(frame(rows), KeyedState(new.keys)).height == 1
    ok = [call(T0, "stripe", "api.stripe.com", body="email=jane@example.com", n=2)]
    assert leak.detect(frame(ok), KeyedState(leak.keys)).height == 0


def test_phone_region_is_checked_and_upper_cased() -> None:
    from shopwatch.detect.registry import build
    from shopwatch.errors import ContentError

    raw = DETECTORS["vendor.data_leak"].spec.model_dump(exclude_none=True)
    assert build({**raw, "phone_region": "de"}).spec.phone_region == "DE"
    with pytest.raises(ContentError, match="phone_region"):
        build({**raw, "phone_region": "XX"})
