"""Verification of search-engine crawlers by reverse-then-forward DNS.

A user agent claiming Googlebot, Bingbot, Applebot, YandexBot, DuckDuckBot or
Baiduspider (the entries with ``verify`` in ``content/useragents/bots.yaml``) is checked
the way the engines document: the PTR name of the address must end in one of the
engine's domains, and the A (IPv4) or AAAA (IPv6) records of that name must contain the
same address. The answer goes to ``user_agent.bot.verified``: True, False, or null while
unknown; rows claiming no verifiable crawler stay null.

The address checked is ``client.ip`` when present (the client behind a proxy or CDN),
else ``source.ip``.

Caching rules, per (address, engine):

- verified: kept ``ttl_s`` (default one day);
- refuted (PTR missing or outside the engine's domains, or forward lookup not holding
  the address, NXDOMAIN included): kept ``negative_ttl_s`` (default one hour);
- unknown (timeout, SERVFAIL, no usable answer): the row stays null, never False, and
  the address is not asked again for ``retry_s`` (default 60 s) so a dead resolver is
  not hammered; after that the next batch asks again.

Modes: ``blocking=False`` (live) hands unknown addresses to background threads and the
batch goes on with null; later batches see the answer. ``blocking=True`` (replay, tests)
resolves the batch's few unknown claimed-crawler addresses, concurrently, before
returning.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_all
from enum import Enum
from pathlib import Path
from typing import Any

import dns.exception
import dns.resolver
import dns.reversename
import polars as pl
import structlog

from shopwatch.enrich.useragent import BotPatterns, load_bot_patterns
from shopwatch.errors import ConfigError

__all__ = ["CrawlerVerifier", "Verdict", "matches_domain"]

log = structlog.get_logger(__name__)

_OUTPUT = "user_agent.bot.verified"


class Verdict(Enum):
    """Outcome of one check; UNKNOWN is written as null."""

    VERIFIED = True
    REFUTED = False
    UNKNOWN = None


def matches_domain(name: str, domains: Sequence[str]) -> bool:
    """True when DNS ``name`` is one of ``domains`` or a name below one of them.

    >>> matches_domain("crawl-66-249-66-1.googlebot.com.", ["googlebot.com"])
    True
    >>> matches_domain("googlebot.com.evil.net", ["googlebot.com"])
    False
    >>> matches_domain("evilgooglebot.com", ["googlebot.com"])
    False
    """
    host = name.lower().rstrip(".")
    return any(host == d or host.endswith("." + d) for d in domains)


class CrawlerVerifier:
    """Fills ``user_agent.bot.verified`` for rows claiming a verifiable search crawler.

    ``nameservers`` and ``port`` choose the resolver (the system's when ``nameservers``
    is None); ``timeout_s`` bounds one whole check. ``workers`` threads resolve
    concurrently; in live mode at most ``max_pending`` checks wait, more are dropped
    (and retried by a later batch). ``clock`` is the monotonic time source of the cache.
    Call :meth:`close` to stop the worker threads.
    """

    name = "crawler_dns"
    provides = frozenset({_OUTPUT})

    def __init__(
        self,
        *,
        nameservers: Sequence[str] | None = None,
        port: int = 53,
        timeout_s: float = 2.0,
        ttl_s: float = 86_400.0,
        negative_ttl_s: float = 3_600.0,
        retry_s: float = 60.0,
        blocking: bool = False,
        workers: int = 4,
        max_pending: int = 1_000,
        max_entries: int = 100_000,
        patterns_path: Path | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if timeout_s <= 0 or workers < 1 or max_pending < 1 or max_entries < 1:
            raise ConfigError(
                "crawler DNS: timeout_s must be > 0 and workers, max_pending, max_entries >= 1"
            )
        self.patterns: BotPatterns = load_bot_patterns(patterns_path)
        self.engines = self.patterns.verifiable()
        self.blocking = blocking
        self.ttl_s, self.negative_ttl_s, self.retry_s = ttl_s, negative_ttl_s, retry_s
        self.max_pending, self.max_entries = max_pending, max_entries
        self._clock = clock
        self._resolver = dns.resolver.Resolver(configure=nameservers is None)
        if nameservers is not None:
            self._resolver.nameservers = list(nameservers)
        self._resolver.port = port
        self._resolver.timeout = timeout_s
        self._resolver.lifetime = timeout_s
        self._resolver.cache = None  # our own cache, with our own rules
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, str], tuple[Verdict, float]] = OrderedDict()
        self._pending: set[tuple[str, str]] = set()
        self._workers = workers
        self._pool: ThreadPoolExecutor | None = None
        self._claims: dict[str, str | None] = {}
        self.dropped = 0

    @classmethod
    def from_settings(cls, settings: Any) -> CrawlerVerifier:
        """Build from ``settings.enrich["crawler_dns"]`` (keys: the constructor's names)."""
        options = dict((getattr(settings, "enrich", None) or {}).get("crawler_dns") or {})
        known = {
            "nameservers", "port", "timeout_s", "ttl_s", "negative_ttl_s", "retry_s",
            "blocking", "workers", "max_pending", "max_entries", "patterns_path",
        }  # fmt: skip
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(
                f"enrich.crawler_dns has unknown keys {unknown}; known: {sorted(known)}"
            )
        if options.get("patterns_path"):
            options["patterns_path"] = Path(options["patterns_path"])
        return cls(**options)

    # ---------------------------------------------------------------------------------
    # Batch

    def enrich(self, batch: pl.DataFrame) -> pl.DataFrame:
        """The batch with ``user_agent.bot.verified`` filled where known; rows unchanged."""
        if _OUTPUT not in batch.columns:
            batch = batch.with_columns(pl.lit(None, dtype=pl.Boolean).alias(_OUTPUT))
        elif batch.schema[_OUTPUT] != pl.Boolean:
            batch = batch.with_columns(pl.col(_OUTPUT).cast(pl.Boolean, strict=False))
        if batch.height == 0:
            return batch
        claimed = self._claimed(batch)
        address = self._address(batch)
        if claimed is None or address is None:
            return batch
        pairs = (
            pl.DataFrame({"_ip": address, "_engine": claimed})
            .drop_nulls()
            .unique(maintain_order=True)
        )
        if pairs.height == 0:
            return batch
        verdicts = self._verdicts(list(pairs.iter_rows()))
        keys = pairs.with_columns(pl.Series("_verified", verdicts, dtype=pl.Boolean))
        return (
            batch.with_columns(address.alias("_ip"), claimed.alias("_engine"))
            .join(keys, on=["_ip", "_engine"], how="left", maintain_order="left")
            .with_columns(pl.coalesce(pl.col(_OUTPUT), pl.col("_verified")).alias(_OUTPUT))
            .drop("_ip", "_engine", "_verified")
        )

    def _claimed(self, batch: pl.DataFrame) -> pl.Series | None:
        """The verifiable bot each row claims (null for none), from its user agent."""
        if "user_agent.original" in batch.columns:
            original = batch.get_column("user_agent.original").cast(pl.String, strict=False)
            mapping = self._claims_of(original.drop_nulls().unique())
            claimed = original.replace_strict(
                list(mapping), list(mapping.values()), default=None, return_dtype=pl.String
            )
        else:
            claimed = pl.Series([None] * batch.height, dtype=pl.String)
        if "user_agent.bot.name" in batch.columns:
            bot = pl.col("user_agent.bot.name").cast(pl.String, strict=False)
            named = batch.select(
                pl.when(bot.is_in(list(self.engines))).then(bot).alias("named")
            ).to_series()
            claimed = claimed.fill_null(named)
        return claimed if claimed.null_count() < batch.height else None

    def _claims_of(self, uas: pl.Series) -> dict[str, str | None]:
        """User agent -> the verifiable bot it claims, for unique ``uas`` (cached)."""
        known = self._claims
        missing = uas.filter(~uas.is_in(list(known))) if known else uas
        if missing.len():
            if len(known) + missing.len() > self.max_entries:
                known.clear()
            entries = self.patterns.entries
            for ua, index in zip(
                missing.to_list(), self.patterns.claim_many(missing).to_list(), strict=True
            ):
                entry = None if index is None else entries[index]
                known[ua] = entry.name if entry is not None and entry.verify else None
        return {ua: known.get(ua) for ua in uas.to_list()}

    @staticmethod
    def _address(batch: pl.DataFrame) -> pl.Series | None:
        columns = [c for c in ("client.ip", "source.ip") if c in batch.columns]
        if not columns:
            return None
        return batch.select(
            pl.coalesce(pl.col(c).cast(pl.String, strict=False) for c in columns)
            .str.strip_chars()
            .alias("_ip")
        ).to_series()

    def _verdicts(self, pairs: list[tuple[str, str]]) -> list[bool | None]:
        now = self._clock()
        out: list[bool | None] = []
        todo: list[tuple[str, str]] = []
        cached = 0
        with self._lock:
            for pair in pairs:
                entry = self._cache.get(pair)
                if entry is not None and entry[1] > now:
                    out.append(entry[0].value)
                    cached += 1
                    continue
                out.append(None)
                if pair not in self._pending:
                    todo.append(pair)
        queued = self._submit(todo)
        if self.blocking and queued:
            wait_all(queued)
            with self._lock:
                for i, pair in enumerate(pairs):
                    entry = self._cache.get(pair)
                    if out[i] is None and entry is not None:
                        out[i] = entry[0].value
        log.debug(
            "crawlers_checked",
            claimed=len(pairs),
            cached=cached,
            asked=len(queued),
            dropped=len(todo) - len(queued),
            blocking=self.blocking,
        )
        return out

    def _submit(self, todo: list[tuple[str, str]]) -> list[Future[None]]:
        if not todo:
            return []
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="crawler-dns")
        futures: list[Future[None]] = []
        with self._lock:
            for pair in todo:
                if pair in self._pending:
                    continue
                if not self.blocking and len(self._pending) >= self.max_pending:
                    self.dropped += 1
                    continue
                self._pending.add(pair)
                futures.append(self._pool.submit(self._check_and_store, pair))
        return futures

    def _check_and_store(self, pair: tuple[str, str]) -> None:
        ip, engine = pair
        try:
            verdict = self.check(ip, self.engines[engine])
        finally:
            with self._lock:
                self._pending.discard(pair)
        with self._lock:
            ttl = {
                Verdict.VERIFIED: self.ttl_s,
                Verdict.REFUTED: self.negative_ttl_s,
                Verdict.UNKNOWN: self.retry_s,
            }[verdict]
            self._cache[pair] = (verdict, self._clock() + ttl)
            self._cache.move_to_end(pair)
            while len(self._cache) > self.max_entries:
                self._cache.popitem(last=False)

    # ---------------------------------------------------------------------------------
    # One check

    def check(self, ip: str, domains: Sequence[str]) -> Verdict:
        """Reverse-then-forward DNS check of ``ip`` against ``domains`` (uncached, blocking)."""
        try:
            address = ipaddress.ip_address(ip.strip("[] "))
        except ValueError:
            return Verdict.REFUTED  # a claimed crawler with no valid address is not one
        if not address.is_global:
            return Verdict.REFUTED
        try:
            answer = self._resolver.resolve(dns.reversename.from_address(str(address)), "PTR")
            names = [str(r.target) for r in answer]
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return Verdict.REFUTED
        except dns.exception.DNSException:  # timeout, SERVFAIL, refused, malformed
            return Verdict.UNKNOWN
        candidates = [n for n in names if matches_domain(n, domains)]
        if not candidates:
            return Verdict.REFUTED
        rdtype = "AAAA" if address.version == 6 else "A"
        unknown = False
        for name in candidates:
            try:
                forward = self._resolver.resolve(name, rdtype)
            except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
                continue
            except dns.exception.DNSException:
                unknown = True
                continue
            if any(ipaddress.ip_address(r.address) == address for r in forward):
                return Verdict.VERIFIED
        return Verdict.UNKNOWN if unknown else Verdict.REFUTED

    def close(self) -> None:
        """Stop the worker threads (waits for checks under way)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
