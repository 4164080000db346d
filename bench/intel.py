"""Threat-intel matching speed and memory: ``python -m bench.intel``.

For 100,000 and 1,000,000 random networks (mostly /32 and /24, some wider, nested ones
included) it prints the index build time and size, then lookups per second of

- ``search``: ``np.searchsorted`` over uint32 keys (the index alone),
- ``strings``: address strings parsed and searched (what the enricher does per batch),
- ``baseline``: a Python loop over the same addresses, looking each up in one dict per
  prefix length (the usual fast pure-Python way), measured in the same process,

and their ratio; then the enricher on a batch of 50,000 rows, and YARA on request bodies.
"""

from __future__ import annotations

import ipaddress
import os
import random
import resource
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

from shopwatch.enrich.feeds import Indicator
from shopwatch.enrich.intel import FeedSnapshot, IndicatorIndex, IntelEnricher

NOW = datetime(2026, 3, 14, tzinfo=UTC)
LOOKUPS = 1_000_000
BASELINE_LOOKUPS = 100_000
PREFIXES = (
    ([32] * 60) + ([24] * 25) + [16, 18, 20, 21, 22, 22, 23, 23, 23, 23] + [25, 26, 27, 28, 29]
)


def _rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1e6


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


def _networks(count: int, rng: random.Random) -> list[tuple[int, int]]:
    """``count`` random global IPv4 networks as (network int, prefix length)."""
    out = []
    while len(out) < count:
        prefix = rng.choice(PREFIXES)
        value = rng.getrandbits(32) & (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
        if not 1 <= value >> 24 <= 223 or value >> 24 in (10, 127):
            continue
        out.append((value, prefix))
    return out


def _addresses(nets: list[tuple[int, int]], count: int, rng: random.Random) -> np.ndarray:
    """Half inside listed networks, half random."""
    inside = [net + rng.randrange(1 << (32 - p)) for net, p in rng.choices(nets, k=count // 2)]
    noise = [rng.getrandbits(32) for _ in range(count - count // 2)]
    keys = np.array(inside + noise, dtype=np.uint32)
    rng.shuffle(keys)  # type: ignore[arg-type]
    return keys


def _baseline(nets: list[tuple[int, int]], keys: np.ndarray) -> tuple[float, int]:
    """Lookups/s of a per-prefix-length dict scan in pure Python, and hits."""
    tables: dict[int, dict[int, int]] = {}
    for n, (net, prefix) in enumerate(nets):
        tables.setdefault(prefix, {})[net >> (32 - prefix)] = n
    order = sorted(tables, reverse=True)
    values = [int(k) for k in keys]
    started = time.perf_counter()
    hits = 0
    for value in values:
        for prefix in order:
            if (value >> (32 - prefix)) in tables[prefix]:
                hits += 1
                break
    return len(values) / (time.perf_counter() - started), hits


def bench_cidrs(count: int, rng: random.Random) -> None:
    nets = _networks(count, rng)
    indicators = [Indicator("ipv4-addr", f"{ipaddress.IPv4Address(net)}/{p}") for net, p in nets]
    rss_before = _rss_mb()
    started = time.perf_counter()
    index = IndicatorIndex.build(
        [FeedSnapshot("bench", 70, indicators, NOW)], now=NOW, match_private=True
    )
    build_s = time.perf_counter() - started
    build_rss = _rss_mb() - rss_before
    keys = _addresses(nets, LOOKUPS, rng)
    strings = pl.Series([str(ipaddress.IPv4Address(int(k))) for k in keys])

    started = time.perf_counter()
    entry, _ = index.v4.find(keys)
    search_rate = LOOKUPS / (time.perf_counter() - started)
    started = time.perf_counter()
    entry_s, _ = index.match_ips(strings)
    string_rate = LOOKUPS / (time.perf_counter() - started)
    assert (entry >= 0).sum() == (entry_s >= 0).sum()
    base_rate, base_hits = _baseline(nets, keys[:BASELINE_LOOKUPS])
    assert base_hits == int((entry[:BASELINE_LOOKUPS] >= 0).sum()), "baseline and index disagree"
    print(
        f"cidrs={count} segments={len(index.v4)} build={build_s:.2f}s "
        f"index={index.nbytes / 1e6:.1f}MB rss_after_build=+{build_rss:.0f}MB "
        f"hit_rate={(entry >= 0).mean():.2f}"
    )
    print(
        f"  lookups: search={search_rate / 1e6:.2f}M/s strings={string_rate / 1e6:.2f}M/s "
        f"baseline(dict per prefix)={base_rate / 1e6:.2f}M/s "
        f"ratio(strings/baseline)={string_rate / base_rate:.1f} ratio(search/baseline)={search_rate / base_rate:.1f}"
    )
    if count == 100_000:
        bench_enricher(index, strings, rng)


def bench_enricher(index: IndicatorIndex, strings: pl.Series, rng: random.Random) -> None:
    rows = 50_000
    pool = strings.head(5_000).to_list()
    batch = pl.DataFrame(
        {
            "source.ip": [rng.choice(pool) for _ in range(rows)],
            "client.ip": [None] * rows,
            "destination.domain": [
                rng.choice(["api.stripe.com", "cdn.shop.example", None]) for _ in range(rows)
            ],
        },
        schema={"source.ip": pl.String, "client.ip": pl.String, "destination.domain": pl.String},
    )
    enricher = IntelEnricher(index)
    enricher.enrich(batch.head(100))
    started = time.perf_counter()
    for _ in range(5):
        out = enricher.enrich(batch)
    rate = 5 * rows / (time.perf_counter() - started)
    print(
        f"  enricher: batch={rows} rows unique_ips=5000 {rate / 1e6:.2f}M rows/s matched={out['threat.indicator.feed'].is_not_null().mean():.2f}"
    )


def bench_yara() -> None:
    from shopwatch.enrich.yara import YaraEnricher

    yara = YaraEnricher()
    bodies = [
        '{"email": "user%d@example.com", "password": "pw-%d", "remember_me": true}',
        "email=user%d%%40example.com&password=secret%d",
        '{"items": [{"sku": "SKU-%d", "qty": %d}], "note": "leave at the door"}',
        "<?php system($_GET['c%d']); // %d ?>",
    ]
    texts = [bodies[n % 4] % (n, n) for n in range(20_000)]
    started = time.perf_counter()
    hits = sum(1 for t in texts if yara.match(t))
    rate = len(texts) / (time.perf_counter() - started)
    print(f"yara: bodies={len(texts)} {rate / 1e3:.1f}k bodies/s matched={hits}")


def main() -> None:
    rng = random.Random(20260314)
    for count in (100_000, 1_000_000):
        bench_cidrs(count, rng)
    bench_yara()
    print(f"peak_rss={_peak_mb():.0f}MB")


if __name__ == "__main__":
    main()
