"""User agent parsing, claimed bots and tools, headless browsers."""

from __future__ import annotations

import random
from pathlib import Path

import polars as pl
import pytest

from shopwatch.contract import EVENT_SCHEMA, conform
from shopwatch.enrich.base import Enricher
from shopwatch.enrich.useragent import UserAgentEnricher, load_bot_patterns
from shopwatch.errors import ConfigError, ContentError

CHROME_WIN = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
GOOGLEBOT_SMARTPHONE = (
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/120.0.6099.129 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
)
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
HEADLESS = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/119.0.6045.105 Safari/537.36"
)
PHANTOM = (
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) "
    "PhantomJS/2.1.1 Safari/538.1"
)
SQLMAP = "sqlmap/1.7.2#stable (https://sqlmap.org)"
NIKTO = "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None) (Test:Port Check)"
NUCLEI = "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)"

COLS = (
    "user_agent.name",
    "user_agent.os.name",
    "user_agent.device.name",
    "user_agent.bot.name",
    "user_agent.headless",
)


@pytest.fixture(scope="module")
def ua() -> UserAgentEnricher:
    return UserAgentEnricher()


def _fields(ua: UserAgentEnricher, strings: list[str | None]) -> list[tuple[object, ...]]:
    batch = pl.DataFrame(
        {"user_agent.original": strings}, schema={"user_agent.original": pl.String}
    )
    out = ua.enrich(batch)
    assert out.height == len(strings)
    return list(out.select(COLS).iter_rows())


def test_is_an_enricher(ua: UserAgentEnricher) -> None:
    assert isinstance(ua, Enricher)
    assert set(COLS) == ua.provides <= set(EVENT_SCHEMA)


def test_browsers(ua: UserAgentEnricher) -> None:
    rows = _fields(ua, [CHROME_WIN, SAFARI_IPHONE, FIREFOX_LINUX])
    assert rows[0] == ("Chrome", "Windows", None, None, False)
    assert rows[1] == ("Mobile Safari", "iOS", "iPhone", None, False)
    assert rows[2][:2] == ("Firefox", "Ubuntu") and rows[2][3:] == (None, False)


def test_crawlers_and_tools(ua: UserAgentEnricher) -> None:
    strings = [
        GOOGLEBOT, GOOGLEBOT_SMARTPHONE, BINGBOT, "curl/8.4.0", "python-requests/2.31.0",
        SQLMAP, NIKTO, NUCLEI, "Mozilla/5.0 zgrab/0.x", "Go-http-client/1.1",
        "Scrapy/2.11.0 (+https://scrapy.org)", "Wget/1.21.3",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    ]  # fmt: skip
    bots = [row[3] for row in _fields(ua, strings)]  # type: ignore[misc]
    assert bots == [
        "Googlebot", "Googlebot", "Bingbot", "curl", "python-requests", "sqlmap", "Nikto",
        "nuclei", "zgrab", "Go-http-client", "Scrapy", "Wget", "AhrefsBot",
    ]  # fmt: skip
    rows = _fields(ua, [GOOGLEBOT_SMARTPHONE])
    assert rows[0] == ("Googlebot", "Android", "Spider", "Googlebot", False)


def test_unlisted_spider_named_by_ua_parser(ua: UserAgentEnricher) -> None:
    rows = _fields(ua, ["Mozilla/5.0 (compatible; FreshNewBot/1.0; +http://example.com/bot)"])
    assert rows[0][3] == "FreshNewBot"


def test_headless(ua: UserAgentEnricher) -> None:
    rows = _fields(ua, [HEADLESS, PHANTOM, CHROME_WIN])
    assert [(r[3], r[4]) for r in rows] == [
        ("HeadlessChrome", True),
        ("PhantomJS", True),
        (None, False),
    ]
    assert rows[0][0] == "HeadlessChrome" and rows[0][1] == "Linux"


def test_nulls_garbage_and_order(ua: UserAgentEnricher) -> None:
    rows = _fields(ua, [None, "-", "", "\x00\xff garbage \u2603", CHROME_WIN, None])
    assert rows[0] == (None,) * 5 and rows[5] == (None,) * 5
    assert rows[1] == (None, None, None, None, False)
    assert rows[3][4] is False
    assert rows[4][0] == "Chrome"


def test_many_rows_few_unique_keep_order(ua: UserAgentEnricher) -> None:
    rng = random.Random(5)
    pool = [CHROME_WIN, SAFARI_IPHONE, GOOGLEBOT, SQLMAP, None]
    strings = [rng.choice(pool) for _ in range(3000)]
    batch = pl.DataFrame(
        {"event.id": [str(i) for i in range(3000)], "user_agent.original": strings},
    )
    out = ua.enrich(batch)
    assert out["event.id"].to_list() == batch["event.id"].to_list()
    expect = {CHROME_WIN: None, SAFARI_IPHONE: None, GOOGLEBOT: "Googlebot", SQLMAP: "sqlmap"}
    assert out["user_agent.bot.name"].to_list() == [expect.get(s) if s else None for s in strings]


def test_cache_is_used_across_batches() -> None:
    ua = UserAgentEnricher(cache_size=10)
    ua.enrich(pl.DataFrame({"user_agent.original": [CHROME_WIN, GOOGLEBOT] * 50}))
    assert ua.parsed == 2  # parsed once per unique string
    ua.enrich(pl.DataFrame({"user_agent.original": [GOOGLEBOT]}))
    assert ua.parsed == 2
    many = [f"python-requests/2.{i}.0" for i in range(12)]  # more than the cache holds
    out = ua.enrich(pl.DataFrame({"user_agent.original": [GOOGLEBOT, *many]}))
    assert out["user_agent.bot.name"].to_list() == ["Googlebot"] + ["python-requests"] * 12
    assert ua.parsed == 14 and len(ua._cache) <= 12


def test_vectorized_claims_agree_with_python_regexes() -> None:
    patterns = load_bot_patterns()
    strings = [
        CHROME_WIN, SAFARI_IPHONE, GOOGLEBOT, GOOGLEBOT_SMARTPHONE, BINGBOT, HEADLESS, PHANTOM,
        SQLMAP, NIKTO, NUCLEI, "curl/8.4.0", "Go-http-client/1.1", "", "-", "WGET/1.0",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile "
        "Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    ]  # fmt: skip
    many = patterns.claim_many(pl.Series(strings)).to_list()
    one = [patterns.claim(s) for s in strings]
    assert [None if i is None else patterns.entries[i] for i in many] == one
    assert sum(c is not None for c in one) == len(strings) - 4  # browsers, "", "-"


def test_keeps_given_values_and_missing_columns(ua: UserAgentEnricher) -> None:
    batch = pl.DataFrame(
        {"user_agent.original": [CHROME_WIN, GOOGLEBOT], "user_agent.name": ["Custom", None]}
    )
    out = ua.enrich(batch)
    assert out["user_agent.name"].to_list() == ["Custom", "Googlebot"]
    out = ua.enrich(pl.DataFrame({"event.id": ["a"]}))
    assert out.select(COLS).null_count().row(0) == (1,) * 5
    full = conform(pl.DataFrame({"user_agent.original": [SQLMAP]}))
    out = ua.enrich(full)
    assert out.schema == full.schema and out["user_agent.bot.name"].to_list() == ["sqlmap"]


def test_shipped_patterns_are_valid() -> None:
    patterns = load_bot_patterns()
    verifiable = patterns.verifiable()
    assert verifiable["Googlebot"] == ("googlebot.com", "google.com", "googleusercontent.com")
    assert set(verifiable) == {
        "Googlebot", "Bingbot", "Applebot", "YandexBot", "DuckDuckBot", "Baiduspider",
    }  # fmt: skip
    assert patterns.claim(CHROME_WIN) is None
    headless = {e.name for e in patterns.entries if e.headless}
    assert {"HeadlessChrome", "PhantomJS", "Puppeteer", "Playwright", "Selenium"} <= headless


def test_bad_pattern_file(tmp_path: Path) -> None:
    bad = tmp_path / "bots.yaml"
    bad.write_text("- {name: X, kind: tool, match: '(unclosed'}\n", encoding="utf-8")
    with pytest.raises(ContentError, match="bad regex"):
        UserAgentEnricher(patterns_path=bad)
    bad.write_text("- {name: X, kind: tool, match: 'x', colour: red}\n", encoding="utf-8")
    with pytest.raises(ContentError, match="entry 1 is invalid"):
        UserAgentEnricher(patterns_path=bad)


def test_from_settings(tmp_path: Path) -> None:
    from shopwatch.config import Settings

    own = tmp_path / "mine.yaml"
    own.write_text("- {name: ShopProbe, kind: monitor, match: 'ShopProbe/'}\n", encoding="utf-8")
    ua = UserAgentEnricher.from_settings(Settings(enrich={"user_agent": {"patterns": str(own)}}))
    out = ua.enrich(pl.DataFrame({"user_agent.original": ["ShopProbe/1.0", "curl/8.0"]}))
    assert out["user_agent.bot.name"].to_list() == ["ShopProbe", "curl"]  # overlay + shipped
    with pytest.raises(ConfigError, match="unknown keys"):
        UserAgentEnricher.from_settings(Settings(enrich={"user_agent": {"size": 3}}))


def test_real_access_log(datasets: Path, ua: UserAgentEnricher) -> None:
    """A real blog's log (elastic_apache_logs): browsers, crawlers and tools are told apart."""
    import re

    path = datasets / "access-logs" / "elastic_apache_logs.log"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    last_quoted = re.compile(r'"([^"]*)"\s*$')
    strings = [
        m.group(1)
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        if (m := last_quoted.search(line))
    ]
    out = ua.enrich(pl.DataFrame({"user_agent.original": strings}))
    assert out.height == len(strings) > 9000
    bots = out["user_agent.bot.name"].value_counts()
    counts = dict(zip(bots["user_agent.bot.name"], bots["count"], strict=True))
    assert counts["Googlebot"] > 500 and counts["Bingbot"] > 100
    browsers = out.filter(pl.col("user_agent.bot.name").is_null())
    assert browsers.height > len(strings) * 0.7  # mostly people
    assert browsers["user_agent.name"].is_in(["Chrome", "Firefox", "Safari"]).mean() > 0.5  # type: ignore[operator]
