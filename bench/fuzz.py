"""Fuzz every parser for longer than the test suite does, and print what broke.

    python -m bench.fuzz [--seconds 60] [--parser NAME] [--engine auto|hypothesis|atheris]

Each parser (``nginx``, ``ecs``, ``syslog``, ``vpcflow`` and the ``auto`` sniffer) gets
``--seconds`` of inputs. An input is a chunk of lines; it crashes when the parser raises,
or breaks an invariant: ``batch.height + rejects.height + skipped == lines in``, the
contract's schema, every timestamp in the years 1 to 9999 and convertible to Python,
every reject reason from the enum and none ``parser_error`` (the safety net that
hides a parser bug from the run, not from this bench).

Engines: ``hypothesis`` draws format-shaped hostile lines (``tests/parse/strategies.py``)
and shrinks each crash to a minimal example; ``atheris`` (when ``pip install atheris``
worked) runs coverage-guided byte mutation in a child process per parser, seeded with good
and hostile lines of the format, and minimizes each crash by dropping lines and
characters. ``auto`` runs hypothesis, then atheris when it is installed. Prints one line
per parser and engine, ``parser=ecs engine=hypothesis seconds=60 inputs=41230 lines=398112
crashes=0``, then each crash class with its minimal repro.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PARSERS = ["nginx", "ecs", "syslog", "vpcflow", "auto"]
#: What Python's datetime holds: a batch timestamp outside this span breaks every consumer.
MIN_TIME = datetime(1, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)


@dataclass
class Crash:
    """One class of crash: where it happened, and the smallest input found for it."""

    key: str
    error: str
    lines: list[str]
    seen: int = 1
    context: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """What one engine did to one parser."""

    parser: str
    engine: str
    seconds: float = 0.0
    inputs: int = 0
    lines: int = 0
    crashes: dict[str, Crash] = field(default_factory=dict)
    note: str = ""


def _quiet() -> None:
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.CRITICAL))


def check(fmt: str, lines: list[str], context: dict[str, Any] | None = None) -> None:
    """Parse ``lines`` as ``fmt``; raise on an exception or a broken invariant.

    ``context`` holds :class:`ParseContext` fields other than the source (year, zone,
    reference time).
    """
    import polars as pl
    from polars.exceptions import PanicException

    from shopwatch.contract import EVENT_SCHEMA
    from shopwatch.parse import FORMATS, ParseContext, RejectReason, parse_frame, sniff_format
    from shopwatch.parse.read import lines_frame

    frame = lines_frame(lines)
    ctx = ParseContext(source="fuzz.log", **(context or {}))
    if fmt == "auto":
        fmt = sniff_format([s for s in lines if s.strip()]) or "auto"
    try:
        # the format's own parser, not parse_frame's safety net: a raise here is the bug
        parsed = parse_frame(frame, fmt, ctx) if fmt == "auto" else FORMATS[fmt].parse(frame, ctx)
        got = parsed.batch.height + parsed.rejects.height + parsed.skipped
        if got != len(lines):
            raise AssertionError(f"lines in {len(lines)}, out {got}")
        if parsed.batch.schema != pl.Schema(EVENT_SCHEMA):
            raise AssertionError("batch schema differs from the contract")
        reasons = set(parsed.rejects["reason"].to_list())
        if not reasons <= {r.value for r in RejectReason} - {"parser_error"}:
            raise AssertionError(f"reject reasons {sorted(reasons)}")
        ts = parsed.batch["@timestamp"]
        if ts.null_count():
            raise AssertionError("null @timestamp in the batch")
        if parsed.batch.height and not (ts.min() >= MIN_TIME and ts.max() <= MAX_TIME):  # type: ignore[operator]
            raise AssertionError("@timestamp outside the years 1..9999")
        parsed.batch.rows()
        parsed.rejects.rows()
    except PanicException as err:  # a Rust panic is a BaseException: make it an ordinary crash
        raise RuntimeError(f"polars panic: {err}") from err


def crash_key(err: BaseException) -> str:
    """Exception type and the innermost shopwatch frame (or the assertion's first words)."""
    frames = [f for f in traceback.extract_tb(err.__traceback__) if "shopwatch" in f.filename]
    where = f"{Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else "?"
    if isinstance(err, AssertionError):
        where = " ".join(str(err).split()[:2])
    cause = err.__cause__ or err
    return f"{type(cause).__name__} at {where}"


def _summary(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"[:300]


# -- hypothesis ------------------------------------------------------------------------


def fuzz_hypothesis(fmt: str, seconds: float) -> Result:
    """Rounds of hypothesis runs until ``seconds`` pass; each failure is shrunk first."""
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import strategies as st
    from tests.parse.strategies import lines_of

    result = Result(fmt, "hypothesis")
    started = time.monotonic()
    deadline = started + seconds
    last: list[tuple[list[str], dict[str, Any]]] = [([], {})]
    zones = ["UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Europe/Berlin", "America/St_Johns"]
    contexts = st.fixed_dictionaries(
        {},
        optional={
            "year": st.integers(-10, 20_000),
            "timezone": st.sampled_from(zones),
            "reference": st.one_of(st.datetimes(), st.datetimes(timezones=st.timezones())),
        },
    )

    @settings(
        max_examples=50,  # short rounds, so the run ends close to its deadline
        deadline=None,
        database=None,
        derandomize=False,
        phases=[Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=False,
        verbosity=Verbosity.quiet,
        print_blob=False,
    )
    @given(st.one_of(lines_of(fmt, max_size=20), lines_of("auto", max_size=20)), contexts)
    def run(lines: list[str], context: dict[str, Any]) -> None:
        result.inputs += 1
        result.lines += len(lines)
        last[0] = (lines, context)
        check(fmt, lines, context)

    while time.monotonic() < deadline:
        try:
            run()
        except Exception as err:  # a crash: hypothesis ran the shrunk example last
            key = crash_key(err)
            lines, context = last[0]
            known = result.crashes.get(key)
            if known is None:
                result.crashes[key] = Crash(key, _summary(err), lines, context={**context})
            else:
                known.seen += 1
                if len(lines) < len(known.lines):
                    known.lines, known.context = lines, {**context}
    result.seconds = time.monotonic() - started
    return result


# -- atheris ---------------------------------------------------------------------------


def has_atheris() -> bool:
    """Whether atheris imports here (``pip install atheris``)."""
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def _split(data: bytes) -> list[str]:
    """Fuzzer bytes as lines, decoded as the reader does (UTF-8, else Latin-1 per line)."""
    out = []
    for raw in data.split(b"\n"):
        raw = raw.removesuffix(b"\r")
        try:
            out.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(raw.decode("latin-1"))
    return out


def minimize(fmt: str, lines: list[str], key: str, budget_s: float = 10.0) -> list[str]:
    """Drop lines, then characters, while the same crash class still happens."""

    def still(candidate: list[str]) -> bool:
        try:
            check(fmt, candidate)
        except Exception as err:
            return crash_key(err) == key
        return False

    stop = time.monotonic() + budget_s
    i = 0
    while i < len(lines) and len(lines) > 1 and time.monotonic() < stop:
        candidate = lines[:i] + lines[i + 1 :]
        if still(candidate):
            lines = candidate
        else:
            i += 1
    for n in range(len(lines)):
        step = max(len(lines[n]) // 2, 1)
        while step and time.monotonic() < stop:
            j, changed = 0, False
            while j < len(lines[n]) and time.monotonic() < stop:
                text = lines[n][:j] + lines[n][j + step :]
                candidate = [*lines[:n], text, *lines[n + 1 :]]
                if still(candidate):
                    lines, changed = candidate, True
                else:
                    j += step
            step = step if changed and step > 1 else step // 2
    return lines


def _seeds(fmt: str, folder: Path) -> None:
    """Good and hostile lines of the format, a few per seed file."""
    from tests.parse.hostile import HOSTILE, good_lines

    formats = ["nginx", "ecs", "syslog", "vpcflow"] if fmt == "auto" else [fmt]
    n = 0
    for name in formats:
        good = good_lines(name, 4)
        bad = [h.line for h in HOSTILE.values() if h.fmt == name]
        for k, line in enumerate([*good, *bad]):
            (folder / f"seed{n}").write_text("\n".join([good[k % len(good)], line]))
            n += 1


def _atheris_child(fmt: str, seconds: float, out: Path) -> None:
    """Runs inside the child: libFuzzer's loop until ``-max_total_time``."""
    import atheris

    with atheris.instrument_imports(include=["shopwatch"]):
        import shopwatch.parse  # noqa: F401
    _quiet()
    state: dict[str, Any] = {"inputs": 0, "lines": 0, "crashes": {}, "flushed": 0.0}

    def flush() -> None:
        state["flushed"] = time.monotonic()
        tmp = out.with_suffix(".tmp")
        tmp.write_text(json.dumps({k: v for k, v in state.items() if k != "flushed"}))
        tmp.replace(out)

    def one(data: bytes) -> None:
        lines = _split(data)
        state["inputs"] += 1
        state["lines"] += len(lines)
        try:
            check(fmt, lines)
        except Exception as err:
            key = crash_key(err)
            known = state["crashes"].get(key)
            if known is None:
                small = minimize(fmt, lines, key)
                state["crashes"][key] = {"error": _summary(err), "lines": small, "seen": 1}
                flush()
            else:
                known["seen"] += 1
        if time.monotonic() - state["flushed"] > 1.0:
            flush()

    corpus = Path(tempfile.mkdtemp(prefix="fuzz-corpus-"))
    _seeds(fmt, corpus)
    flush()
    atheris.Setup(
        [
            sys.argv[0],
            f"-max_total_time={int(seconds)}",
            "-max_len=4096",
            "-rss_limit_mb=4096",
            "-print_final_stats=1",
            str(corpus),
        ],
        one,
    )
    atheris.Fuzz()


def fuzz_atheris(fmt: str, seconds: float) -> Result:
    """One child process per parser; reads back its counts and crashes."""
    result = Result(fmt, "atheris")
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        started = time.monotonic()
        child = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.fuzz",
                "--child",
                "--engine",
                "atheris",
                "--parser",
                fmt,
                "--seconds",
                str(seconds),
                "--out",
                str(out),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=seconds * 3 + 120,
            check=False,
        )
        result.seconds = time.monotonic() - started
        data = json.loads(out.read_text()) if out.exists() else {}
    result.inputs, result.lines = int(data.get("inputs", 0)), int(data.get("lines", 0))
    for line in child.stderr.splitlines():  # libFuzzer's exact count, when it printed one
        if line.startswith("stat::number_of_executed_units:"):
            result.inputs = max(result.inputs, int(line.split(":")[-1]))
    for key, c in data.get("crashes", {}).items():
        result.crashes[key] = Crash(key, c["error"], c["lines"], c["seen"])
    if child.returncode not in (0,) and not result.crashes:
        tail = " | ".join(child.stderr.strip().splitlines()[-3:])
        result.note = f"child exited {child.returncode}: {tail[:300]}"
        if child.returncode < 0 or "deadly signal" in child.stderr:
            result.crashes["process died"] = Crash("process died", result.note, [])
    return result


# -- report ----------------------------------------------------------------------------


def report(results: list[Result], write: Callable[[str], None] = print) -> None:
    """One line per parser and engine, then each crash class with its repro."""
    for r in results:
        write(
            f"parser={r.parser} engine={r.engine} seconds={r.seconds:.0f} inputs={r.inputs} "
            f"lines={r.lines} crashes={len(r.crashes)}" + (f" note={r.note}" if r.note else "")
        )
    for r in results:
        for crash in r.crashes.values():
            write(f"\n[{r.parser}/{r.engine}] {crash.key} (seen {crash.seen}x)\n  {crash.error}")
            write("  repro: " + json.dumps(crash.lines, ensure_ascii=True)[:2000])
            if crash.context:
                write(f"  context: {crash.context!r}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="per parser and engine")
    parser.add_argument("--parser", choices=PARSERS, action="append", help="default: all")
    parser.add_argument("--engine", choices=["auto", "hypothesis", "atheris"], default="auto")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    os.environ.setdefault("POLARS_MAX_THREADS", "1")
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 1000))
    if args.child:
        assert args.out is not None and args.parser
        _atheris_child(args.parser[0], args.seconds, args.out)
        return 0
    _quiet()
    engines = {
        "auto": ["hypothesis", *(["atheris"] if has_atheris() else [])],
        "hypothesis": ["hypothesis"],
        "atheris": ["atheris"],
    }[args.engine]
    if args.engine == "atheris" and not has_atheris():
        print("atheris is not installed (pip install atheris); use --engine hypothesis")
        return 2
    results = []
    for fmt in args.parser or PARSERS:
        for engine in engines:
            run = fuzz_hypothesis if engine == "hypothesis" else fuzz_atheris
            results.append(run(fmt, args.seconds))
            report(results[-1:])
    print("\nsummary")
    report(results)
    return 1 if any(r.crashes for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
