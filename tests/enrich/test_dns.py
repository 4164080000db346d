"""Crawler verification by reverse-then-forward DNS, against a DNS server on 127.0.0.1."""

from __future__ import annotations

import socket
import threading
from collections import Counter
from collections.abc import Iterator

import polars as pl
import pytest
from dnslib import AAAA, PTR, QTYPE, RCODE, RR, A, DNSRecord
from dnslib.server import BaseResolver, DNSHandler, DNSLogger, DNSServer

from shopwatch.enrich.base import Enricher
from shopwatch.enrich.dns import CrawlerVerifier, Verdict
from shopwatch.enrich.useragent import UserAgentEnricher
from shopwatch.errors import ConfigError

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
BINGBOT = "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0.0.0 Safari/537.36"
)

REAL_GOOGLEBOT = "66.249.66.1"
REAL_GOOGLEBOT_V6 = "2001:4860:4801:10::1"
REAL_BINGBOT = "157.55.39.1"
FAKE_GOOGLEBOT = "185.220.101.7"  # PTR evil.example.net
MISMATCH_GOOGLEBOT = "45.33.32.156"  # PTR in googlebot.com, whose A is another address
NO_PTR_GOOGLEBOT = "193.0.6.139"  # NXDOMAIN for the PTR

ZONE: dict[tuple[str, str], list[object]] = {
    ("1.66.249.66.in-addr.arpa.", "PTR"): [PTR("crawl-66-249-66-1.googlebot.com.")],
    ("crawl-66-249-66-1.googlebot.com.", "A"): [A(REAL_GOOGLEBOT)],
    (
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.1.0.8.4.0.6.8.4.1.0.0.2.ip6.arpa.",
        "PTR",
    ): [PTR("crawl-2001-4860-4801-10--1.googlebot.com.")],
    ("crawl-2001-4860-4801-10--1.googlebot.com.", "AAAA"): [AAAA(REAL_GOOGLEBOT_V6)],
    ("1.39.55.157.in-addr.arpa.", "PTR"): [PTR("msnbot-157-55-39-1.search.msn.com.")],
    ("msnbot-157-55-39-1.search.msn.com.", "A"): [A(REAL_BINGBOT)],
    ("7.101.220.185.in-addr.arpa.", "PTR"): [PTR("evil.example.net.")],
    ("evil.example.net.", "A"): [A(FAKE_GOOGLEBOT)],
    ("156.32.33.45.in-addr.arpa.", "PTR"): [PTR("crawl-66-249-66-9.googlebot.com.")],
    ("crawl-66-249-66-9.googlebot.com.", "A"): [A("66.249.66.9")],
}


class ZoneResolver(BaseResolver):  # type: ignore[misc]
    """Answers from ZONE and counts every question it gets."""

    def __init__(self) -> None:
        self.asked: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: DNSHandler) -> DNSRecord:
        reply = request.reply()
        name, qtype = str(request.q.qname).lower(), QTYPE[request.q.qtype]
        with self._lock:
            self.asked[(name, qtype)] += 1
        records = ZONE.get((name, qtype))
        if records:
            for rdata in records:
                reply.add_answer(RR(request.q.qname, request.q.qtype, rdata=rdata, ttl=300))
        elif not any(key[0] == name for key in ZONE):
            reply.header.rcode = RCODE.NXDOMAIN
        return reply

    def total(self) -> int:
        with self._lock:
            return sum(self.asked.values())


@pytest.fixture()
def zone() -> Iterator[tuple[ZoneResolver, int]]:
    resolver = ZoneResolver()
    server = DNSServer(
        resolver, address="127.0.0.1", port=0, logger=DNSLogger(log="-request,-reply")
    )
    server.start_thread()
    try:
        yield resolver, server.server.server_address[1]
    finally:
        server.stop()
        server.server.server_close()


class SilentServer:
    """A UDP port that reads questions, counts them and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.received = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sock.recvfrom(4096)
                self.received += 1
            except TimeoutError:
                continue

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _batch(rows: list[tuple[str | None, str | None]]) -> pl.DataFrame:
    return pl.DataFrame(
        {"source.ip": [r[0] for r in rows], "user_agent.original": [r[1] for r in rows]},
        schema={"source.ip": pl.String, "user_agent.original": pl.String},
    )


def _verifier(port: int, **kw: object) -> CrawlerVerifier:
    options: dict[str, object] = {
        "nameservers": ["127.0.0.1"], "port": port, "timeout_s": 1.0, "blocking": True,
    }  # fmt: skip
    options.update(kw)
    return CrawlerVerifier(**options)  # type: ignore[arg-type]


def test_is_an_enricher(zone: tuple[ZoneResolver, int]) -> None:
    verifier = _verifier(zone[1])
    assert isinstance(verifier, Enricher)
    assert verifier.provides == frozenset({"user_agent.bot.verified"})


def test_blocking_verdicts(zone: tuple[ZoneResolver, int]) -> None:
    resolver, port = zone
    verifier = _verifier(port)
    batch = _batch(
        [
            (REAL_GOOGLEBOT, GOOGLEBOT),
            (FAKE_GOOGLEBOT, GOOGLEBOT),
            (MISMATCH_GOOGLEBOT, GOOGLEBOT),
            (NO_PTR_GOOGLEBOT, GOOGLEBOT),
            (REAL_GOOGLEBOT_V6, GOOGLEBOT),
            (REAL_BINGBOT, BINGBOT),
            (REAL_GOOGLEBOT, BINGBOT),  # a Google address claiming to be Bing
            ("10.0.0.5", GOOGLEBOT),  # private address: never a crawler
            ("garbage", GOOGLEBOT),
            (None, GOOGLEBOT),
            ("80.133.10.1", CHROME),  # no claim: not applicable
            (REAL_GOOGLEBOT, None),
        ]
    )
    out = verifier.enrich(batch)
    try:
        assert out["user_agent.bot.verified"].to_list() == [
            True, False, False, False, True, True, False, False, False, None, None, None,
        ]  # fmt: skip
        assert out.select("source.ip", "user_agent.original").equals(batch)
        # Nothing was asked about the browser or about addresses no crawler claimed.
        assert ("1.10.133.80.in-addr.arpa.", "PTR") not in resolver.asked
        assert ("5.0.0.10.in-addr.arpa.", "PTR") not in resolver.asked
        # The forward lookup of a mismatching PTR name was made and refuted it.
        assert resolver.asked[("crawl-66-249-66-9.googlebot.com.", "A")] == 1
    finally:
        verifier.close()


def test_cache_avoids_second_query(zone: tuple[ZoneResolver, int]) -> None:
    resolver, port = zone
    clock = FakeClock()
    verifier = _verifier(port, clock=clock, ttl_s=100.0, negative_ttl_s=10.0)
    batch = _batch([(REAL_GOOGLEBOT, GOOGLEBOT), (FAKE_GOOGLEBOT, GOOGLEBOT)] * 20)
    try:
        first = verifier.enrich(batch)["user_agent.bot.verified"].to_list()
        asked = resolver.total()
        assert asked == 3  # PTR + A for the real one, PTR for the fake one: once per address
        second = verifier.enrich(batch)["user_agent.bot.verified"].to_list()
        assert second == first == [True, False] * 20
        assert resolver.total() == asked
        clock.now += 11  # the negative entry expired, the positive one not
        verifier.enrich(batch)
        assert resolver.total() == asked + 1
        assert resolver.asked[("7.101.220.185.in-addr.arpa.", "PTR")] == 2
        clock.now += 100  # both expired
        verifier.enrich(batch)
        assert resolver.asked[("1.66.249.66.in-addr.arpa.", "PTR")] == 2
    finally:
        verifier.close()


def test_timeout_gives_null_and_retries_after_the_retry_delay() -> None:
    silent = SilentServer()
    clock = FakeClock()
    verifier = _verifier(silent.port, timeout_s=0.3, retry_s=30.0, clock=clock)
    batch = _batch([(REAL_GOOGLEBOT, GOOGLEBOT)])
    try:
        out = verifier.enrich(batch)
        assert out["user_agent.bot.verified"].to_list() == [None]
        assert verifier.check(REAL_GOOGLEBOT, ["googlebot.com"]) is Verdict.UNKNOWN
        asked = silent.received
        assert asked >= 2
        out = verifier.enrich(batch)  # within retry_s: no new question, still null (not False)
        assert out["user_agent.bot.verified"].to_list() == [None]
        assert silent.received == asked
        clock.now += 31
        verifier.enrich(batch)
        assert silent.received > asked
    finally:
        verifier.close()
        silent.close()


def test_live_mode_answers_on_a_later_batch(zone: tuple[ZoneResolver, int]) -> None:
    resolver, port = zone
    verifier = _verifier(port, blocking=False)
    batch = _batch([(REAL_GOOGLEBOT, GOOGLEBOT), (FAKE_GOOGLEBOT, GOOGLEBOT)])
    try:
        first = verifier.enrich(batch)["user_agent.bot.verified"].to_list()
        assert first == [None, None]  # queued, the batch went on
        assert verifier._pool is not None
        verifier._pool.shutdown(wait=True)  # let the background checks finish
        verifier._pool = None
        second = verifier.enrich(batch)["user_agent.bot.verified"].to_list()
        assert second == [True, False]
        assert resolver.asked[("1.66.249.66.in-addr.arpa.", "PTR")] == 1
    finally:
        verifier.close()


def test_claim_from_bot_name_and_client_ip(zone: tuple[ZoneResolver, int]) -> None:
    _, port = zone
    verifier = _verifier(port)
    ua = UserAgentEnricher()
    batch = pl.DataFrame(
        {
            "source.ip": ["104.16.0.1", "104.16.0.1", "104.16.0.1"],  # CDN edge
            "client.ip": [REAL_GOOGLEBOT, FAKE_GOOGLEBOT, None],
            "user_agent.original": [GOOGLEBOT, GOOGLEBOT, CHROME],
            "user_agent.bot.verified": [None, True, None],  # a given value is kept
        }
    )
    try:
        out = verifier.enrich(ua.enrich(batch))
        assert out["user_agent.bot.name"].to_list() == ["Googlebot", "Googlebot", None]
        assert out["user_agent.bot.verified"].to_list() == [True, True, None]
        # Only the bot name, no original user agent: the claim still counts.
        named = pl.DataFrame({"source.ip": [REAL_BINGBOT], "user_agent.bot.name": ["Bingbot"]})
        assert verifier.enrich(named)["user_agent.bot.verified"].to_list() == [True]
    finally:
        verifier.close()


def test_missing_columns_and_empty_batches(zone: tuple[ZoneResolver, int]) -> None:
    resolver, port = zone
    verifier = _verifier(port)
    try:
        out = verifier.enrich(pl.DataFrame({"event.id": ["a", "b"]}))
        assert out["user_agent.bot.verified"].to_list() == [None, None]
        out = verifier.enrich(_batch([]))
        assert out.height == 0 and out.schema["user_agent.bot.verified"] == pl.Boolean
        out = verifier.enrich(_batch([(None, None), (None, None)]))
        assert out["user_agent.bot.verified"].null_count() == 2
        assert resolver.total() == 0
    finally:
        verifier.close()


def test_from_settings() -> None:
    from shopwatch.config import Settings

    settings = Settings(
        enrich={"crawler_dns": {"nameservers": ["127.0.0.1"], "port": 5353, "blocking": True}}
    )
    verifier = CrawlerVerifier.from_settings(settings)
    assert verifier.blocking and verifier._resolver.port == 5353
    assert verifier._resolver.nameservers == ["127.0.0.1"]
    with pytest.raises(ConfigError, match="unknown keys"):
        CrawlerVerifier.from_settings(Settings(enrich={"crawler_dns": {"server": "x"}}))
