"""The learned request model (kind ``request_model``): what it learns, keeps and refuses."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from shopwatch.contract import conform
from shopwatch.detect.registry import build
from shopwatch.detect.requests import _digest, decode_component
from shopwatch.detect.state import KeyedState

from .helpers import run

T0 = datetime(2026, 3, 14, 9, tzinfo=UTC)

RULE = {
    "id": "test.request_model",
    "kind": "request_model",
    "category": "web_attack",
    "where": {"event.dataset": "http.access"},
}


def requests(
    rows: list[tuple[str, str, str | None, int | None]], *, start: int = 0, ip: str | None = None
) -> pl.DataFrame:
    """Access events: (method, path, query, status); one address each unless ``ip``."""
    n = len(rows)
    return conform(
        pl.DataFrame(
            {
                "@timestamp": [T0 + timedelta(seconds=start + i) for i in range(n)],
                "event.id": [f"r{start + i}" for i in range(n)],
                "event.dataset": ["http.access"] * n,
                "source.ip": [ip or f"203.0.113.{(start + i) % 200 + 1}" for i in range(n)],
                "http.request.method": [r[0] for r in rows],
                "url.path": [r[1] for r in rows],
                "url.query": [r[2] for r in rows],
                "http.response.status_code": [r[3] for r in rows],
            }
        )
    )


def normal(n: int = 800) -> pl.DataFrame:
    """A checkout endpoint that takes a five-digit zip and one of three countries."""
    rows = [
        (
            "GET",
            "/checkout/address",
            f"zip={10000 + (i * 7919) % 89999}&country={'USCADE'[i % 3 * 2 : i % 3 * 2 + 2]}",
            200,
        )
        for i in range(n)
    ]
    return requests(rows)


def flagged_ids(alerts: pl.DataFrame) -> set[str]:
    return {i for ids in alerts["event.ids"] for i in ids}


@pytest.fixture
def detector():  # type: ignore[no-untyped-def]
    return build(dict(RULE))


def test_decoding_is_the_standard_library_s() -> None:
    assert decode_component("a+b%20c") == "a b c"
    assert decode_component("%27%3B--") == "';--"
    assert decode_component("Espa%F1a") == "España"  # Latin-1 bytes, not UTF-8
    assert decode_component("Espa%C3%B1a") == "España"


def test_a_quote_in_a_digit_field_alerts_and_says_where(detector) -> None:  # type: ignore[no-untyped-def]
    attack = requests(
        [("GET", "/checkout/address", "zip=1%27+OR+1%3D1&country=US", 200)], start=5000
    )
    alerts = run(detector, [normal(), attack])
    assert flagged_ids(alerts) == {"r5000"}
    reasons = json.loads(alerts["details"][0])["reasons"]
    assert {r["parameter"] for r in reasons} == {"zip"}
    assert "`zip`" in alerts["message"][0]


def test_an_attack_repeated_in_one_batch_never_teaches_the_model(detector) -> None:  # type: ignore[no-untyped-def]
    """Twenty copies of one probe after the normal traffic, all in the same batch."""
    probes = [("GET", "/checkout/address", "zip=10001&country=US&debug=1", 200)] * 20
    batch = pl.concat([normal(), requests(probes, start=5000)])
    state = KeyedState(detector.keys)
    alerts = run(detector, [batch], state)
    assert flagged_ids(alerts) == {f"r{5000 + i}" for i in range(20)}
    names = state.table("items", {}).filter(pl.col("_f") == "name")["_item"].to_list()
    assert _digest("debug") not in names and names


def test_cutting_the_input_into_batches_flags_the_same_requests(detector) -> None:  # type: ignore[no-untyped-def]
    attacks = requests(
        [
            ("PUT", "/checkout/address", "zip=10001&country=US", 200),
            ("GET", "/checkout/address", "zip=10001&country=US&x=1", 200),
            ("GET", "/checkout/address", "zip=" + "1" * 60 + "&country=US", 200),
        ],
        start=5000,
    )
    events = pl.concat([normal(), attacks])
    whole = flagged_ids(run(detector, [events]))
    cut = flagged_ids(run(build(dict(RULE)), list(events.iter_slices(97))))
    assert whole == cut == {"r5000", "r5001", "r5002"}


def test_each_attribute_alerts_on_its_own(detector) -> None:  # type: ignore[no-untyped-def]
    cases = {
        "method": ("PUT", "/checkout/address", "zip=10001&country=US", 200),
        "name": ("GET", "/checkout/address", "zip=10001&country=US&x=1", 200),
        "length": ("GET", "/checkout/address", "zip=" + "1" * 60 + "&country=US", 200),
        "char": ("GET", "/checkout/address", "zip=1000%3B&country=US", 200),
        "path": ("GET", "/checkout/address/.env", None, 404),
    }
    for attribute, row in cases.items():
        alerts = run(build(dict(RULE)), [normal(), requests([row], start=5000)])
        assert alerts.height == 1, attribute
        said = {r["attribute"] for r in json.loads(alerts["details"][0])["reasons"]}
        assert attribute in said, (attribute, said)


def test_what_a_shop_does_every_day_stays_quiet(detector) -> None:  # type: ignore[no-untyped-def]
    looks = requests(
        [
            ("HEAD", "/checkout/address", "zip=10001&country=US", 200),  # HEAD is GET
            ("OPTIONS", "/checkout/address", "zip=10001&country=US", 204),  # preflight
            ("GET", "/checkout/address", "zip=99998&country=CA", 200),  # new number
            ("GET", "/checkout/address/confirm", None, 200),  # a new page that answered
        ],
        start=5000,
    )
    assert run(detector, [normal(), looks]).height == 0


def test_a_scanner_s_misses_cannot_open_a_prefix(detector) -> None:  # type: ignore[no-untyped-def]
    """Two hundred different 404s under /checkout, then a probe: still unlike the site."""
    misses = requests(
        [("GET", f"/checkout/backup{i}.zip", None, 404) for i in range(200)], start=5000
    )
    probe = requests([("GET", "/checkout/.git", None, 404)], start=9000, ip="198.51.100.7")
    state = KeyedState(detector.keys)
    alerts = run(detector, [normal(), misses, probe], state)
    assert "r9000" in flagged_ids(alerts)
    totals = state.table("totals", {})
    assert not totals.filter((pl.col("_node") == "/checkout") & pl.col("_open")).height


def test_many_successful_pages_open_a_prefix(detector) -> None:  # type: ignore[no-untyped-def]
    """A catalogue of 300 product pages: a new one is no news, its parameters are shared."""
    pages = requests(
        [("GET", f"/product/item-{i % 300}", f"size={'SML'[i % 3]}", 200) for i in range(1500)]
    )
    new = requests(
        [
            ("GET", "/product/brand-new-item", "size=L", 200),
            ("GET", "/product/another-item", "size=M%27--", 200),
        ],
        start=5000,
    )
    alerts = run(detector, [pages, new])
    assert flagged_ids(alerts) == {"r5001"}
    assert "/product/*" in alerts["message"][0] or "`size`" in alerts["message"][0]


def test_no_value_is_kept_and_names_and_segments_only_as_digests(detector) -> None:  # type: ignore[no-untyped-def]
    secret = "hunter2-correct-horse"
    token = "Zx9_kq2Lw-reset-me"
    rows = [("POST", "/login", f"user=u{i}&pwd={secret}", 200) for i in range(50)]
    rows.append(("GET", f"/account/reset/{token}", None, 200))
    state = KeyedState(detector.keys)
    run(detector, [requests(rows)], state)
    blobs = b"".join(state.snapshot().values())
    assert secret.encode() not in blobs
    assert token.encode() not in blobs
    assert b"pwd" not in blobs  # nor names (a token can be one: /reset?TOKEN)


def test_snapshot_and_restore_keep_what_was_learned(detector) -> None:  # type: ignore[no-untyped-def]
    state = KeyedState(detector.keys)
    run(detector, [normal()], state)
    restored = KeyedState(detector.keys)
    restored.restore(state.snapshot())
    attack = requests([("GET", "/checkout/address", "zip=10001&country=US&x=1", 200)], start=5000)
    assert flagged_ids(run(build(dict(RULE)), [attack], restored)) == {"r5000"}
    assert run(build(dict(RULE)), [attack], KeyedState(detector.keys)).height == 0


def test_one_address_gets_one_alert_per_quiet_window(detector) -> None:  # type: ignore[no-untyped-def]
    probes = requests(
        [("GET", "/checkout/address", f"zip=10001&country=US&x{i}=1", 200) for i in range(5)],
        start=5000,
        ip="198.51.100.9",
    )
    alerts = run(detector, [normal(), probes])
    assert alerts.height == 1
    assert json.loads(alerts["details"][0])["requests"] == 5
    assert flagged_ids(alerts) == {f"r{5000 + i}" for i in range(5)}


def _browse(ip: str, start: int) -> list[tuple[str, str, str | None, int | None, str]]:
    return [
        ("GET", "/checkout/address", "zip=10001&country=US", 200, ip),
        ("GET", "/checkout/address", "zip=10002&country=CA", 200, ip),
        ("GET", "/checkout/address", "zip=10003&country=DE", 200, ip),
    ]


def _from(rows: list[tuple[str, str, str | None, int | None, str]], start: int) -> pl.DataFrame:
    frames = [
        requests([r[:4]], start=start + k, ip=r[4])  # type: ignore[list-item]
        for k, r in enumerate(rows)
    ]
    return pl.concat(frames)


def test_a_feature_many_customers_use_is_adopted(detector) -> None:  # type: ignore[no-untyped-def]
    """Sixty customers who browsed first, then use a new parameter: it becomes normal."""
    rows = []
    for c in range(60):
        ip = f"192.0.2.{c + 1}"
        rows += _browse(ip, 0)
        rows.append(("GET", "/checkout/address", "zip=10001&country=US&gift=1", 200, ip))
    state = KeyedState(detector.keys)
    run(detector, [normal(), _from(rows, 5000)], state)
    later = requests([("GET", "/checkout/address", "zip=10001&country=US&gift=1", 200)], start=9000)
    assert run(detector, [later], state).height == 0


def test_one_shot_senders_never_teach_an_item(detector) -> None:  # type: ignore[no-untyped-def]
    """Sixty addresses that send nothing but the probe (a botnet, or CSIC's requests)."""
    probe = ("GET", "/checkout/address", "zip=10001&country=US&debug=1", 200)
    probes = _from([(*probe, f"198.51.100.{i + 1}") for i in range(60)], 5000)
    state = KeyedState(detector.keys)
    run(detector, [normal(), probes], state)
    later = requests(
        [("GET", "/checkout/address", "zip=10001&country=US&debug=1", 200)],
        start=9000,
        ip="198.51.100.99",
    )
    assert flagged_ids(run(detector, [later], state)) == {"r9000"}


def test_many_addresses_with_the_same_anomaly_share_one_alert(detector) -> None:  # type: ignore[no-untyped-def]
    probe = ("GET", "/checkout/address", "zip=10001&country=US&page=2", 200)
    other = ("PUT", "/checkout/address", "zip=10001&country=US", 200)
    rows = [(*probe, f"198.51.100.{i + 1}") for i in range(30)] + [(*other, "192.0.2.200")]
    alerts = run(detector, [normal(), _from(rows, 5000)])
    assert alerts.height == 2
    shared = alerts.filter(pl.col("entity").struct.field("source.ip") == "198.51.100.1")
    members = json.loads(shared["details"][0])["members"]["source.ip"]
    assert len(members) == 30 and "and 29 other addresses" in shared["message"][0]
    assert len(shared["event.ids"][0]) == 30


def test_the_spelling_of_a_path_does_not_hide_an_endpoint(detector) -> None:  # type: ignore[no-untyped-def]
    """The endpoint's parameters are judged however its path is written."""
    attack = "zip=1%27+OR+1%3D1&country=US"
    for path in ("/checkout/address/", "/checkout//address", "/checkout/address;jsessionid=7"):
        alerts = run(
            build(dict(RULE)), [normal(), requests([("GET", path, attack, 200)], start=5000)]
        )
        said = {r["parameter"] for r in json.loads(alerts["details"][0])["reasons"]}
        assert "zip" in said, path


def test_more_parameters_than_it_reads_is_itself_rare(detector) -> None:  # type: ignore[no-untyped-def]
    padded = "&".join(["country=US"] * 64) + "&zip=1%27+OR+1%3D1"
    alerts = run(
        detector, [normal(), requests([("GET", "/checkout/address", padded, 200)], start=5000)]
    )
    assert alerts.height == 1


def test_one_address_cannot_open_a_prefix_or_teach_in_bulk(detector) -> None:  # type: ignore[no-untyped-def]
    """64 preflights and 64 rate-limited GETs from one address, then 1,200 growing zips."""
    scan = [("OPTIONS", f"/checkout/x{i}", None, 204) for i in range(64)]
    scan += [("GET", f"/checkout/y{i}", None, 429) for i in range(64)]
    scan += [
        ("GET", "/checkout/address", f"zip={'1' * (5 + i // 40)}&country=US", 200)
        for i in range(1200)
    ]
    one = pl.concat([requests([r], start=5000 + k, ip="198.51.100.66") for k, r in enumerate(scan)])
    probe = requests(
        [
            ("GET", "/checkout/.git", None, 404),
            ("GET", "/checkout/address", "zip=" + "1" * 40 + "&country=US", 200),
        ],
        start=9000,
        ip="198.51.100.67",
    )
    state = KeyedState(detector.keys)
    run(detector, [normal(), one], state)
    assert flagged_ids(run(detector, [probe], state)) == {"r9000", "r9001"}
