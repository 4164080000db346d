"""Parser throughput, one format at a time, against plain splitting of the same lines.

    python -m bench.parse [--lines 1000000] [--threads 1] [--chunk 200000]

Lines come from the public datasets when they are found (SHOPWATCH_DATASETS or
../shared/datasets; access logs, loghub OpenSSH/Linux) repeated to ``--lines``, else from
a synthetic mix; ECS and VPC flow lines are generated. Each format is parsed in chunks of
``--chunk`` lines, as ``parse_file`` does. Baselines, in the same process on the same
lines: Polars ``str.split(" ")`` over the column (the floor for any vectorized parse) and,
for ECS, Polars' own ``str.json_decode``. The reader is timed on a temporary plain and
gzip file. Polars runs on ``--threads`` threads (1 by default: one core). Prints lines/s,
the ratio against the baseline and the peak RSS.
"""

from __future__ import annotations

import argparse
import gzip
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _rate(n: int, seconds: float) -> str:
    per = n / seconds if seconds > 0 else float("inf")
    return f"{per / 1e6:.2f}M/s" if per >= 1e6 else f"{per / 1e3:.0f}k/s"


def _datasets() -> Path | None:
    env = os.environ.get("SHOPWATCH_DATASETS")
    path = Path(env) if env else ROOT.parent / "shared" / "datasets"
    return path if path.is_dir() else None


def _repeat(lines: list[str], n: int) -> list[str]:
    return (lines * (n // max(len(lines), 1) + 1))[:n]


def _access_lines(n: int, rng: random.Random) -> list[str]:
    data = _datasets()
    if data is not None:
        raw = (
            (data / "access-logs" / "elastic_apache_logs.log")
            .read_text(encoding="latin-1")
            .splitlines()
        )
        return _repeat(raw, n)
    agents = [
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0 Safari/537.36",
        "curl/8.5.0",
        "Googlebot/2.1 (+http://www.google.com/bot.html)",
    ]
    paths = [
        "/",
        "/products/blue-mug",
        "/cart",
        "/account/login",
        "/search?q=mug&page=2",
        "/static/app.js",
    ]
    return [
        f"{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} - - "
        f'[17/May/2015:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "GET {rng.choice(paths)} HTTP/1.1" '
        f'{rng.choice([200, 200, 304, 404])} {rng.randint(0, 90000)} "-" "{rng.choice(agents)}"'
        for i in range(n)
    ]


def _syslog_lines(n: int) -> list[str]:
    data = _datasets()
    if data is not None:
        raw = (data / "loghub" / "OpenSSH" / "OpenSSH_2k.log").read_text().splitlines()
        raw += (
            (data / "loghub" / "Linux" / "Linux_2k.log").read_text(encoding="latin-1").splitlines()
        )
        return _repeat(raw, n)
    return _repeat(
        [
            "Dec 10 06:55:48 LabSZ sshd[24200]: Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2"
        ],
        n,
    )


def _ecs_lines(n: int, rng: random.Random) -> list[str]:
    import orjson

    out = []
    for i in range(n):
        event = {
            "@timestamp": f"2024-05-01T10:{i // 60 % 60:02d}:{i % 60:02d}.123+02:00",
            "event": {
                "dataset": "shop.auth",
                "action": "login",
                "outcome": rng.choice(["success", "failure"]),
            },
            "source.ip": f"10.0.{i % 256}.{i % 7}",
            "user": {"name": f"user{i % 1000}@example.com"},
            "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0",
            "url": {"path": "/login", "domain": "shop.example"},
            "http.response.status_code": 401,
            "shop": {"session.id": f"s-{i}"},
            "labels": {"x": [1, 2, 3]},
        }
        out.append(orjson.dumps(event).decode())
    return out


def _vpc_lines(n: int, rng: random.Random) -> list[str]:
    return [
        f"2 123456789010 eni-1235b8ca123456789 172.31.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
        f"10.0.0.{rng.randint(1, 254)} {rng.randint(1024, 65535)} {rng.choice([22, 443, 3389])} 6 "
        f"{rng.randint(1, 100)} {rng.randint(40, 90000)} {1418530010 + i} {1418530070 + i} "
        f"{rng.choice(['ACCEPT', 'REJECT'])} OK"
        for i in range(n)
    ]


def _timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--chunk", type=int, default=200_000)
    args = parser.parse_args(argv)
    if "polars" in sys.modules:
        raise SystemExit("run as a fresh process: python -m bench.parse")
    os.environ["POLARS_MAX_THREADS"] = str(args.threads)

    import polars as pl
    import structlog

    from shopwatch.parse import ParseContext, parse_frame
    from shopwatch.parse.read import iter_chunks, lines_frame

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    rng = random.Random(7)
    n = args.lines
    print(
        f"lines={n} threads={pl.thread_pool_size()} chunk={args.chunk} datasets={'yes' if _datasets() else 'no'}"
    )

    def run(
        fmt: str, lines: list[str], extra: Callable[[pl.DataFrame], object] | None = None
    ) -> None:
        frames = [
            lines_frame(lines[i : i + args.chunk], i + 1) for i in range(0, len(lines), args.chunk)
        ]
        ctx = ParseContext(source=f"bench.{fmt}", year=2024)
        parse_frame(frames[0].head(1000), fmt, ctx)  # warm-up (regex compilation)
        events = 0

        def parse() -> None:
            nonlocal events
            events = sum(parse_frame(f, fmt, ctx).batch.height for f in frames)

        took = _timed(parse)
        floor = _timed(lambda: [f.select(pl.col("line").str.split(" ")) for f in frames])
        py = _timed(lambda: [s.split(" ") for s in lines])
        line = (
            f"{fmt:8s} lines={len(lines)} events={events} parse={_rate(len(lines), took)} "
            f"floor(polars split)={_rate(len(lines), floor)} ratio={floor / took:.2f} "
            f"python-split={_rate(len(lines), py)}"
        )
        if extra is not None:
            other = _timed(lambda: [extra(f) for f in frames])
            line += (
                f" polars-json_decode={_rate(len(lines), other)} vs-json_decode={other / took:.2f}"
            )
        print(line + f" rss={_rss_mb():.0f}MB", flush=True)

    run("nginx", _access_lines(n, rng))
    run("syslog", _syslog_lines(max(n // 2, 1)))
    run("vpcflow", _vpc_lines(max(n // 2, 1), rng))
    ecs_n = max(n // 5, 1)
    ecs = _ecs_lines(ecs_n, rng)
    inferred = pl.Series(ecs[:1000]).str.json_decode().dtype  # Polars' decoder, with a known schema
    run("ecs", ecs, extra=lambda f: f.select(pl.col("line").str.json_decode(inferred)))

    lines = _access_lines(n, rng)
    with tempfile.TemporaryDirectory() as tmp:
        plain, packed = Path(tmp) / "access.log", Path(tmp) / "access.log.gz"
        data = ("\n".join(lines) + "\n").encode("utf-8")
        plain.write_bytes(data)
        packed.write_bytes(gzip.compress(data, compresslevel=6))
        for path in (plain, packed):
            count = 0

            def read(path: Path = path) -> None:
                nonlocal count
                count = sum(c.height for c in iter_chunks(path, args.chunk))

            took = _timed(read)
            base = _timed(
                lambda path=path: (
                    gzip.decompress(path.read_bytes())
                    if path.suffix == ".gz"
                    else path.read_bytes()
                ).split(b"\n")
            )
            print(
                f"read     {path.name:12s} lines={count} read={_rate(count, took)} "
                f"floor(bytes split)={_rate(count, base)} ratio={base / took:.2f} "
                f"mb/s={len(data) / 1e6 / took:.0f} rss={_rss_mb():.0f}MB",
                flush=True,
            )


if __name__ == "__main__":
    main()
