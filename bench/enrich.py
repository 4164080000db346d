"""Throughput of the geo/ASN and user agent enrichers against the libraries' own calls.

    python -m bench.enrich [--rows 1000000] [--unique 100000] [--batch 50000]

Geo: ``--rows`` addresses drawn (Zipf-like) from ``--unique`` distinct public IPv4 and
IPv6 addresses, enriched in batches of ``--batch``; baseline: plevin's own per-address
``lookup`` (country and network databases), row by row, in the same process.
User agents: the user agents of the public ``elastic_apache_logs.log`` access log when
the datasets are found (SHOPWATCH_DATASETS or ../shared/datasets), else a synthetic mix
with a similar unique ratio; baseline: ``ua_parser.parse`` plus the bot patterns, row by
row (ua-parser's own small cache included). Prints rows/s, the ratio and the peak RSS.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import random
import re
import resource
import time
from pathlib import Path

import numpy as np
import polars as pl
import structlog

from shopwatch.enrich.geo import GeoEnricher, load_tables
from shopwatch.enrich.useragent import UserAgentEnricher, load_bot_patterns

ROOT = Path(__file__).resolve().parent.parent
UA_LINE = re.compile(r'"([^"]*)"\s*$')


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(n: int, seconds: float) -> str:
    per = n / seconds if seconds > 0 else float("inf")
    return f"{per / 1e6:.2f}M/s" if per >= 1e6 else f"{per / 1e3:.1f}k/s"


def _addresses(unique: int, rng: random.Random) -> list[str]:
    out: set[str] = set()
    v6_share = unique // 10
    while len(out) < unique - v6_share:
        address = ipaddress.IPv4Address(rng.getrandbits(32))
        if address.is_global:
            out.add(str(address))
    v6: set[str] = set()
    while len(v6) < v6_share:
        v6.add(
            str(
                ipaddress.IPv6Address(
                    ((0x2000 + rng.getrandbits(12)) << 112) | rng.getrandbits(112)
                )
            )
        )
    return [*out, *v6]


def _zipf_sample(pool: list[str], rows: int, seed: int) -> list[str]:
    gen = np.random.default_rng(seed)
    ranks = gen.zipf(1.3, size=rows) - 1
    index = np.where(ranks < len(pool), ranks, gen.integers(0, len(pool), size=rows))
    order = gen.permutation(len(pool))
    return [pool[i] for i in order[index]]


def bench_geo(rows: int, unique: int, batch: int) -> None:
    rng = random.Random(1)
    pool = _addresses(unique, rng)
    ips = _zipf_sample(pool, rows, seed=2)
    frame = pl.DataFrame({"source.ip": ips})
    started = time.perf_counter()
    tables = load_tables()
    load_s = time.perf_counter() - started
    geo = GeoEnricher(fields=("source.ip",), tables=tables)
    started = time.perf_counter()
    filled = 0
    for offset in range(0, rows, batch):
        out = geo.enrich(frame.slice(offset, batch))
        filled += out.height - out["source.as.number"].null_count()
    ours_s = time.perf_counter() - started
    started = time.perf_counter()
    geo.enrich(frame)
    whole_s = time.perf_counter() - started

    import plevin
    import plevin_db_country
    import plevin_db_network

    network = plevin.Plevin(plevin_db_network.PATH)
    country = plevin.Plevin(plevin_db_country.PATH)
    sample = ips[: min(rows, 100_000)]
    started = time.perf_counter()
    for ip in sample:
        found = network.lookup(ip)
        country.lookup(ip)
        _ = found.network.asn if found.network else None
    base_s = time.perf_counter() - started
    ours = rows / ours_s
    base = len(sample) / base_s
    print(
        f"geo rows={rows} unique={len(pool)} batch={batch} load={load_s:.2f}s "
        f"enrich={_rate(rows, ours_s)} one_batch={_rate(rows, whole_s)} "
        f"baseline(plevin.lookup per row, {len(sample)} rows)={_rate(len(sample), base_s)} "
        f"ratio={ours / base:.1f} with_asn={filled / rows:.2f} rss={_rss_mb():.0f}MB"
    )


def _real_user_agents() -> list[str] | None:
    env = os.environ.get("SHOPWATCH_DATASETS")
    base = Path(env) if env else ROOT.parent / "shared" / "datasets"
    path = base / "access-logs" / "elastic_apache_logs.log"
    if not path.is_file():
        return None
    out = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        found = UA_LINE.search(line)
        if found:
            out.append(found.group(1))
    return out


def _synthetic_user_agents(rows: int, rng: random.Random) -> list[str]:
    templates = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{a}.0.{b}.{c} Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS {a}_{c} like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/{a}.0 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like "
        "Gecko) Version/{a}.{c} Safari/605.1.15",
        "Mozilla/5.0 (X11; Linux x86_64; rv:{a}.0) Gecko/20100101 Firefox/{a}.0",
        "Mozilla/5.0 (Linux; Android {c}; SM-S{b}B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/{a}.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.{c}.0",
        "python-requests/2.{a}.0",
        "sqlmap/1.{c}.2#stable (https://sqlmap.org)",
    ]
    pool = sorted(
        {
            rng.choice(templates).format(
                a=rng.randint(100, 125), b=rng.randint(900, 999), c=rng.randint(0, 9)
            )
            for _ in range(rows // 20)
        }
    )
    return _zipf_sample(pool, rows, seed=3)


def bench_useragent(batch: int) -> None:
    rng = random.Random(4)
    real = _real_user_agents()
    if real:
        source = "elastic_apache_logs"
        uas = (real * (batch // len(real) + 1))[:batch]
        rng.shuffle(uas)
    else:
        source = "synthetic"
        uas = _synthetic_user_agents(batch, rng)
    frame = pl.DataFrame({"user_agent.original": uas})
    unique = frame["user_agent.original"].n_unique()
    load_bot_patterns()
    import ua_parser

    ua_parser.parse(uas[0])  # load the rules before timing anything
    enricher = UserAgentEnricher()
    started = time.perf_counter()
    enricher.enrich(frame)
    cold_s = time.perf_counter() - started
    started = time.perf_counter()
    enricher.enrich(frame)
    warm_s = time.perf_counter() - started

    sample = uas[: min(batch, 20_000)]
    started = time.perf_counter()
    for ua in sample:
        ua_parser.parse(ua)
    base_s = time.perf_counter() - started
    base = len(sample) / base_s
    print(
        f"user_agent source={source} rows={batch} unique={unique} "
        f"cold={_rate(batch, cold_s)} warm={_rate(batch, warm_s)} "
        f"baseline(ua_parser.parse per row)={_rate(len(sample), base_s)} "
        f"ratio_cold={batch / cold_s / base:.1f} ratio_warm={batch / warm_s / base:.1f} "
        f"rss={_rss_mb():.0f}MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--unique", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    bench_geo(args.rows, args.unique, args.batch)
    bench_useragent(args.batch)
    print(f"peak_rss={_rss_mb():.0f}MB")


if __name__ == "__main__":
    main()
