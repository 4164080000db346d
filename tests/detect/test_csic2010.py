"""The web attack signatures on the CSIC 2010 e-commerce requests: hits on attacks, none on normal."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shopwatch.detect.conditions import compile_where
from shopwatch.detect.content import load_detectors

from .csic import read_requests

WEB_ATTACK = [
    d
    for d in load_detectors().detectors
    if d.category == "web_attack" and d.id.startswith("web.") and not getattr(d, "learns", False)
]


@pytest.fixture(scope="module")
def csic(datasets: Path) -> dict[str, pl.DataFrame]:
    folder = datasets / "csic2010"
    return {
        "normal": pl.concat(
            [
                read_requests(folder / "normalTrafficTraining.txt.gz"),
                read_requests(folder / "normal_test_a.txt.gz"),
            ]
        ),
        "anomalous": read_requests(folder / "anomalous_test_a.txt.gz"),
    }


def _matches(frame: pl.DataFrame) -> pl.Series:
    return frame.select(
        pl.any_horizontal([compile_where(d.spec.where) for d in WEB_ATTACK])
    ).to_series()


def test_request_counts_match_the_dataset(csic: dict[str, pl.DataFrame]) -> None:
    assert csic["normal"].height == 36_000 + 18_000
    assert csic["anomalous"].height == 12_532


def test_no_signature_matches_normal_shop_traffic(csic: dict[str, pl.DataFrame]) -> None:
    hits = csic["normal"].filter(_matches(csic["normal"]))
    assert hits.height == 0, hits.select("url.original", "http.request.body.content").head(5)


def test_signatures_catch_injection_attacks(csic: dict[str, pl.DataFrame]) -> None:
    attacks = csic["anomalous"]
    caught = int(_matches(attacks).sum())
    # The anomalous file also holds parameter tampering and "unintentional" illegal values
    # that no signature can call an attack; injection payloads are a part of it.
    assert caught / attacks.height >= 0.12
    payload = attacks.filter(
        pl.col("url.original").str.contains("(?i)(%27|')(%20|\\+)*(or|and|union)")
        | pl.col("url.original").str.contains("(?i)%3Cscript")
    )
    assert payload.height > 100
    assert float(_matches(payload).mean()) >= 0.95


def test_each_injection_rule_fires_as_alerts(csic: dict[str, pl.DataFrame]) -> None:
    from shopwatch.detect.state import KeyedState

    fired = set()
    for detector in WEB_ATTACK:
        alerts = detector.detect(csic["anomalous"], KeyedState(detector.keys))
        if alerts.height:
            fired.add(detector.id)
            assert alerts["entity"].struct.field("source.ip").unique().to_list() == ["192.0.2.10"]
    assert {"web.sqli_probe", "web.xss_probe", "web.path_traversal", "web.crlf_injection"} <= fired
