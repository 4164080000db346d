"""The engine reads access-log logins per platform before detection, across batches.

A Magento login's outcome is known only from the client's next request, so the engine
holds it back until then; the access-log brute-force rule must count the same failures
whether the log comes in one piece, in small batches, through a snapshot and restore, or
as a file replayed to its end.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from shopwatch.config import Settings
from shopwatch.detect.content import load_detectors
from shopwatch.errors import ConfigError
from shopwatch.parse.base import ParseContext
from shopwatch.parse.nginx import parse_access
from shopwatch.pipeline import Engine
from shopwatch.pipeline.build import build_login_reader
from shopwatch.pipeline.replay import replay

RULE = "web.login_brute_force"
BOT = "185.220.101.34"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


def _line(second: int, request: str, status: int, ip: str = BOT) -> str:
    minute, sec = divmod(second, 60)
    when = f"14/Mar/2026:09:{minute:02d}:{sec:02d} +0000"
    return f'{ip} - - [{when}] "{request} HTTP/1.1" {status} 0 "-" "{UA}"'


def magento_bot(*, follows: bool, tries: int = 24) -> list[str]:
    """Wrong passwords every 10 s; a bot that follows the redirect lands on the login page."""
    lines = []
    for i in range(tries):
        lines.append(_line(10 * i, "POST /customer/account/loginPost/", 302))
        if follows:
            lines.append(_line(10 * i + 1, "GET /customer/account/login/", 200))
    return lines


def parse(lines: list[str]) -> pl.DataFrame:
    frame = pl.DataFrame({"line": lines, "line_no": list(range(1, len(lines) + 1))})
    return parse_access(frame, ParseContext(source="access.log")).batch


def engine(settings: Settings | None = None) -> Engine:
    settings = settings or Settings()
    detectors = [d for d in load_detectors().detectors if d.id == RULE]
    return Engine(detectors, logins=build_login_reader(settings))


def alerts_in_batches(eng: Engine, batch: pl.DataFrame, size: int) -> pl.DataFrame:
    found = [eng.process(batch.slice(i, size)) for i in range(0, batch.height, size)]
    found.append(eng.flush())
    return pl.concat(found)


def _signature(alerts: pl.DataFrame) -> list[tuple[object, ...]]:
    return sorted(alerts.select("alert.id", "@timestamp", "event.ids").rows())


@pytest.mark.parametrize("size", [1000, 7, 2, 1])
def test_magento_failures_read_from_the_next_request_fire(size: int) -> None:
    batch = parse(magento_bot(follows=True))
    alerts = alerts_in_batches(engine(), batch, size)
    assert alerts.height == 1
    row = alerts.row(0, named=True)
    assert row["entity"]["source.ip"] == BOT
    assert row["event.ids"][:3] == ["access.log:1", "access.log:3", "access.log:5"]
    assert _signature(alerts) == _signature(alerts_in_batches(engine(), batch, 1000))


def test_a_bot_that_never_follows_the_redirect_leaves_unknown_logins() -> None:
    assert alerts_in_batches(engine(), parse(magento_bot(follows=False)), 5).height == 0


def test_without_the_magento_platform_nothing_is_read() -> None:
    eng = engine(Settings(detect={"login_platforms": ["woocommerce", "api"]}))
    assert alerts_in_batches(eng, parse(magento_bot(follows=True)), 50).height == 0


def test_a_snapshot_between_post_and_follow_up_loses_nothing() -> None:
    lines = magento_bot(follows=True)
    cut = 2 * 20 + 1  # right after the 21st post, before its follow-up
    whole = alerts_in_batches(engine(), parse(lines), 1000)
    first = engine()
    early = first.process(parse(lines[:cut]))
    assert first.logins is not None and first.logins.held == 1
    second = engine()
    second.restore(first.snapshot())
    rest = parse(lines).slice(cut)
    late = pl.concat([second.process(rest), second.flush()])
    assert _signature(pl.concat([early, late])) == _signature(whole)


def test_replay_flushes_the_logins_held_at_the_end(tmp_path: Path) -> None:
    """The last failures of a file have no later events to release them: replay flushes."""
    lines = magento_bot(follows=True, tries=19)
    lines.append(_line(400, "POST /customer/account/loginPost/", 302))  # the 20th, at the end
    lines.append(_line(401, "GET /customer/account/login/", 200))
    log = tmp_path / "access.log"
    log.write_text("\n".join(lines) + "\n")
    found: list[pl.DataFrame] = []
    report = replay([str(log)], engine(), fmt="nginx", on_alerts=found.append)
    assert report.alerts_by_rule == {RULE: 1}
    assert len(found[0].row(0, named=True)["event.ids"]) == 20


def test_a_file_that_ended_early_does_not_hold_another_files_logins() -> None:
    """Each held login waits on its own source's clock, not on the slowest source's."""
    eng = engine()
    eng.process(parse([_line(0, "GET /", 200, ip="192.0.2.1")]), source="other.log")
    posts = parse(magento_bot(follows=False, tries=40))
    for i in range(posts.height):
        eng.process(posts.slice(i, 1), source="access.log")
    assert eng.logins is not None
    # the source's clock trails its newest events by the few it may not trust (outliers)
    assert eng.logins.held <= eng.runtime.watermark_outliers + 2


def test_settings_choose_the_platforms() -> None:
    everything = build_login_reader(Settings())
    assert everything is not None
    assert [p.id for p in everything.platforms][-1] == "api"
    some = build_login_reader(Settings(detect={"login_platforms": ["magento"]}))
    assert some is not None and [p.id for p in some.platforms] == ["magento"]
    assert build_login_reader(Settings(detect={"login_platforms": []})) is None
    with pytest.raises(ConfigError, match="unknown platforms"):
        build_login_reader(Settings(detect={"login_platforms": ["shopify"]}))


def test_a_platform_folder_of_ones_own_is_read(tmp_path: Path) -> None:
    (tmp_path / "acme.yaml").write_text(
        "id: acme\nname: Acme\nlogins:\n"
        "  - {name: form, path: '^/signin$', status: {302: success, 200: failure}}\n"
    )
    reader = build_login_reader(
        Settings(detect={"platforms_dirs": [tmp_path], "login_platforms": ["acme"]})
    )
    assert reader is not None
    out = reader.read_all(parse([_line(0, "POST /signin", 200)]))
    assert out.select("event.outcome", "shop.platform").row(0) == ("failure", "acme")


def test_a_bad_platform_file_is_skipped_or_refused_when_strict(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("id: bad\nname: Bad\nlogins: [{name: x, path: '('}]\n")
    settings = Settings(detect={"platforms_dirs": [tmp_path]})
    assert build_login_reader(settings) is not None
    with pytest.raises(ConfigError, match=r"bad\.yaml:3: logins.0.path"):
        build_login_reader(settings, strict=True)
