"""Faults against a real ``shopwatch run``: SIGKILL while tailing, and HTTP ingest overload.

    python -m bench.faults [--kills 10] [--lines 200000] [--rate 4000] [--seed 7]

Part 1, crash consistency: ``--lines`` ECS lines of a labelled attack mix (brute-force
bursts, each from its own address and known to give exactly one ``auth.brute_force_ip``
alert, among benign logins and occasional mistyped passwords) are appended to a tailed file
at ``--rate`` lines/s while the service is killed with SIGKILL ``--kills`` times at random
moments (from the first checkpoint that lists the file on; restarts get killed midway too)
and restarted; the file is rotated while the service is down at least once. At the
end it prints expected alerts, stored alerts, lost and duplicated (a burst with more than
one alert, or an alert no burst explains).

Part 2, overload: HTTP ingest is driven at 10x the capacity measured just before
(events processed per second) for ``--overload-s`` seconds from loopback clients; prints
the response status counts, the offered rate and the service's peak RSS (psutil) against
its configured ceiling (``--memory-max-mb``, ``runtime.memory_max_bytes``).

The helpers (:func:`attack_mix`, :class:`ServiceProcess`, :func:`tally`) are shared with
``tests/pipeline/test_crash.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

#: Failed logins per burst: auth.brute_force_ip fires at 20 within 10 minutes; half a
#: burst (12) does not, so a burst split by a crash whose first half is forgotten is lost.
ATTEMPTS = 24
#: Accounts one burst cycles through: under auth.brute_force_account (10 per account)
#: and auth.credential_stuffing (20 distinct), so each burst gives one alert only (and
#: ATTEMPTS is under auth.brute_force_ip_slow's 40).
ACCOUNTS_PER_BURST = 10
RULE = "auth.brute_force_ip"


def _ip(prefix: int, n: int) -> str:
    """A distinct address per ``n`` within the block ``prefix``.x.y.z."""
    return f"{prefix}.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"


@dataclass(frozen=True)
class AttackMix:
    """Lines of a labelled mix and the source address of every burst in it."""

    lines: list[str]
    attackers: list[str]


def _event(at: datetime, ip: str, user: str, outcome: str) -> str:
    record = {
        "@timestamp": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event.dataset": "shop.auth",
        "event.action": "login",
        "event.outcome": outcome,
        "source.ip": ip,
        "user.name": user,
        "user_agent.original": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Firefox/126.0",
    }
    if outcome == "failure":
        record["event.reason"] = "bad_password"
    return json.dumps(record, separators=(",", ":"))


def attack_mix(
    bursts: int, lines_per_burst: int, *, start: datetime, step: timedelta, seed: int = 7
) -> AttackMix:
    """``bursts`` brute-force bursts, each spread over its own ``lines_per_burst`` lines.

    Line ``i`` is dated ``start + i * step``. Burst ``k`` sends its :data:`ATTEMPTS` failed
    logins from one address at evenly spaced lines of its span; the other lines are
    benign: successful logins, and one in 40 a mistyped password from an address and
    account that fail at most once each.
    """
    if lines_per_burst < ATTEMPTS:
        raise ValueError(f"a burst needs at least {ATTEMPTS} lines")
    rng = random.Random(seed)
    lines: list[str] = []
    # Each attacker in a /24 of its own: neighbours failing together would (rightly) be
    # one more alert, of auth.credential_stuffing_network.
    attackers = [_ip(45, (1000 + k) * 256 + 7) for k in range(bursts)]
    benign = 0
    for k, attacker in enumerate(attackers):
        spots = {round(j * lines_per_burst / ATTEMPTS) for j in range(ATTEMPTS)}
        attempt = 0
        for i in range(lines_per_burst):
            at = start + step * (k * lines_per_burst + i)
            if i in spots:
                user = f"victim{k}-{attempt % ACCOUNTS_PER_BURST}@example.org"
                lines.append(_event(at, attacker, user, "failure"))
                attempt += 1
                continue
            benign += 1
            mistyped = rng.random() < 1 / 40
            ip = _ip(81, benign)
            lines.append(
                _event(
                    at, ip, f"customer{benign}@example.net", "failure" if mistyped else "success"
                )
            )
    return AttackMix(lines, attackers)


def tally(attackers: list[str], alerts: list[dict[str, Any]]) -> dict[str, int]:
    """Expected, stored, lost and duplicated alerts of an attack mix.

    ``duplicated`` counts alerts beyond the first for a burst plus alerts that no burst
    explains (another rule, another entity).
    """
    per_ip = Counter(a["ip"] for a in alerts if a["rule_id"] == RULE)
    expected = set(attackers)
    unexplained = sum(1 for a in alerts if a["rule_id"] != RULE or a["ip"] not in expected)
    return {
        "expected": len(expected),
        "stored": len(alerts),
        "lost": sum(1 for ip in expected if per_ip[ip] == 0),
        "duplicated": sum(max(per_ip[ip] - 1, 0) for ip in expected) + unexplained,
    }


def stored_alerts(url: str) -> list[dict[str, Any]]:
    """Every stored alert as {id, rule_id, ip}; empty while the database is not there yet."""
    from shopwatch.errors import StoreError
    from shopwatch.store import Store

    store = Store(url)
    try:
        found = store.alerts(limit=10_000_000)
    except StoreError:
        return []
    finally:
        store.close()
    return [{"id": a.id, "rule_id": a.rule_id, "ip": a.entity.get("source.ip")} for a in found]


@dataclass
class ServiceProcess:
    """``shopwatch run`` in a subprocess of its own, on one data folder and config."""

    workdir: Path
    files: list[dict[str, Any]] = field(default_factory=list)
    http: dict[str, Any] | None = None
    snapshot_interval_s: float = 2.0
    runtime: dict[str, Any] = field(default_factory=dict)
    store_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        sources: dict[str, Any] = {"files": self.files}
        if self.http is not None:
            sources["http"] = self.http
        config: dict[str, Any] = {
            "data_dir": str(self.workdir / "data"),
            "sources": sources,
            "web": {"enabled": False},
            "runtime": {"snapshot_interval_s": self.snapshot_interval_s, **self.runtime},
            "enrich": {
                "crawler_dns": {"enabled": False},
                "intel": {"enabled": False},
                "geo": {"enabled": False},
            },
            # Each burst's own alert is what is counted: no folding into one campaign.
            "detectors": {RULE: {"params": {"campaign": None}}},
        }
        if self.store_url is not None:
            config["store"] = {"url": self.store_url}
        self.config = self.workdir / "shopwatch.yaml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")

    @property
    def url(self) -> str:
        """The store the service writes to."""
        if self.store_url is not None:
            return self.store_url
        return f"sqlite:///{(self.workdir / 'data' / 'shopwatch.db').resolve()}"

    def start(self) -> None:
        """Spawn ``shopwatch run`` (its output appended to ``run.log``)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHOPWATCH_")}
        self.starts += 1
        with open(self.workdir / "run.log", "ab") as out:
            out.write(f"--- start {self.starts}\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "shopwatch", "run", "--config", str(self.config), "--plain"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.workdir,
            )

    @property
    def pid(self) -> int:
        """The running service's process id."""
        assert self.proc is not None
        return self.proc.pid

    def is_running(self) -> bool:
        """True while the subprocess lives."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as a crash or the OOM killer would, and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM (a clean stop: drain, checkpoint), then wait; returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    def reported(self) -> bool:
        """True once the current run printed a status line (it is up and watching)."""
        path = self.workdir / "run.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return " events=" in text.rpartition(f"--- start {self.starts}\n")[2]

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the service printed (for failure messages)."""
        path = self.workdir / "run.log"
        text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def wait_until(predicate: Any, timeout: float, every: float = 0.1) -> bool:
    """Poll ``predicate`` until true or ``timeout`` seconds passed; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)


# -- part 1: kills while tailing -------------------------------------------------------


def _follows(url: str) -> bool:
    """True once the service's saved offsets list a file."""
    from shopwatch.errors import StoreError
    from shopwatch.pipeline.service import OFFSETS
    from shopwatch.store import Store

    store = Store(url)
    try:
        saved = store.load_checkpoint(OFFSETS)
    except StoreError:
        return False
    finally:
        store.close()
    return saved is not None and bool(json.loads(saved)["files"])


class _Writer(threading.Thread):
    """Appends lines to the tailed file at a steady rate; rotates it on request."""

    def __init__(self, path: Path, lines: list[str], rate: float) -> None:
        super().__init__(name="faults-writer", daemon=True)
        self.path = path
        self.lines = lines
        self.rate = rate
        self.written = 0
        self.rotations = 0
        self.lock = threading.Lock()

    def run(self) -> None:
        began = time.monotonic()
        while self.written < len(self.lines):
            due = min(len(self.lines), int((time.monotonic() - began) * self.rate) + 1)
            if due > self.written:
                with self.lock, open(self.path, "a", encoding="utf-8") as fh:
                    fh.write("".join(f"{line}\n" for line in self.lines[self.written : due]))
                    self.written = due
            time.sleep(0.02)

    def rotate(self) -> Path:
        """Rename the file away (a new one is created by the next append)."""
        with self.lock:
            self.rotations += 1
            target = self.path.with_name(f"{self.path.name}.{self.rotations}")
            if self.path.exists():
                os.replace(self.path, target)
            return target


def crash_run(
    workdir: Path, *, kills: int, lines: int, rate: float, seed: int, lines_per_burst: int = 533
) -> dict[str, Any]:
    """Tail a growing labelled file through ``kills`` SIGKILLs; returns the tally and figures."""
    rng = random.Random(seed)
    bursts = max(1, lines // lines_per_burst)
    step = timedelta(seconds=1 / rate)
    start = datetime.now(UTC).replace(microsecond=0)
    mix = attack_mix(bursts, lines_per_burst, start=start, step=step, seed=seed)
    log = workdir / "logs" / "auth.ndjson"
    log.parent.mkdir(parents=True, exist_ok=True)
    service = ServiceProcess(
        workdir / "service", files=[{"path": str(log), "format": "ecs"}], snapshot_interval_s=2.0
    )
    writer = _Writer(log, mix.lines, rate)
    duration = len(mix.lines) / rate
    rotate_at = set(rng.sample(range(kills), k=max(1, kills // 4))) if kills else set()
    began = time.monotonic()
    service.start()
    writer.start()
    # A file rotated away before shopwatch ever recorded it is named by nothing it keeps:
    # the kills start once a checkpoint lists the file (restarts are still killed midway).
    if not wait_until(lambda: _follows(service.url), timeout=60):
        service.kill()
        raise SystemExit(f"the service never followed {log}:\n{service.log_tail()}")
    ready = time.monotonic() - began
    left = max(duration - ready, 1.0)
    moments = sorted(ready + rng.uniform(0.02, 0.98) * left for _ in range(kills))
    for n, moment in enumerate(moments):
        time.sleep(max(0.0, began + moment - time.monotonic()))
        service.kill()
        if n in rotate_at:
            writer.rotate()
        time.sleep(rng.uniform(0.1, 1.0))
        service.start()
    writer.join()
    if not kills:
        writer.rotate()  # rotation is exercised even without kills (while running)
    expected = len(mix.attackers)
    wait_until(
        lambda: sum(a["rule_id"] == RULE for a in stored_alerts(service.url)) >= expected,
        timeout=60 + duration / 10,
        every=0.5,
    )
    time.sleep(1.0)  # let a late duplicate (if any) arrive before counting
    wait_until(service.reported, timeout=30, every=0.5)  # SIGTERM once it handles SIGTERM
    code = service.terminate()
    result: dict[str, Any] = dict(tally(mix.attackers, stored_alerts(service.url)))
    result.update(
        kills=kills,
        rotations=writer.rotations,
        lines=len(mix.lines),
        elapsed_s=round(time.monotonic() - began, 1),
        exit_code=code,
    )
    return result


# -- part 2: HTTP ingest overload -------------------------------------------------------


def _metrics(base: str) -> dict[str, float]:
    import httpx

    text = httpx.get(f"{base}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        values[name] = float(value)
    return values


def _processed(base: str) -> float:
    m = _metrics(base)
    return m.get('shopwatch_sources_lines_total{source="http"}', 0.0) - m.get(
        "shopwatch_sources_queued_lines", 0.0
    )


def _body(n: int, start: int) -> bytes:
    now = datetime.now(UTC)
    return "\n".join(
        _event(now, _ip(100, start + i), f"u{(start + i) % 5000}@example.org", "failure")
        for i in range(n)
    ).encode()


_PER_REQUEST = 1000  # events per ingest request


async def _drive(
    base: str, token: str, seconds: float, rate: float | None, clients: int, seed: int
) -> tuple[Counter[str], int]:
    """Ingest requests for ``seconds``: open loop at ``rate`` events/s, else closed loop.

    Open loop sends on schedule whatever the answers take, as real senders do; past
    ``clients`` requests in flight a due request is counted ``not_sent``. Returns the status
    counts and the events sent.
    """
    import httpx

    bodies = [_body(_PER_REQUEST, (seed * 64 + i) * _PER_REQUEST) for i in range(64)]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"}
    statuses: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    sent = 0
    async with httpx.AsyncClient(timeout=10, limits=limits) as client:

        async def one(i: int) -> None:
            try:
                answer = await client.post(
                    f"{base}/ingest", content=bodies[i % len(bodies)], headers=headers
                )
                statuses[str(answer.status_code)] += 1
            except httpx.HTTPError as err:
                statuses[type(err).__name__] += 1

        until = time.monotonic() + seconds
        if rate is None:

            async def loop(k: int) -> None:
                i = k
                while time.monotonic() < until:
                    await one(i)
                    i += clients

            await asyncio.gather(*(loop(k) for k in range(clients)))
            return statuses, 0
        flying: set[asyncio.Task[None]] = set()
        interval = _PER_REQUEST / rate
        next_at = time.monotonic()
        i = 0
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            now = time.monotonic()
            while next_at <= now and next_at < until:  # catch up on every request now due
                next_at += interval
                i += 1
                if len(flying) >= clients:
                    statuses["not_sent"] += 1
                    continue
                task = asyncio.create_task(one(i))
                flying.add(task)
                task.add_done_callback(flying.discard)
                sent += _PER_REQUEST
        await asyncio.gather(*flying)
    return statuses, sent


def _drive_process(
    args: tuple[str, str, float, float | None, int, int],
) -> tuple[dict[str, int], int]:
    statuses, sent = asyncio.run(_drive(*args))
    return dict(statuses), sent


def _drive_all(
    base: str, token: str, seconds: float, rate: float | None, clients: int, processes: int
) -> tuple[Counter[str], int]:
    """:func:`_drive` from ``processes`` client processes sharing ``rate`` and ``clients``."""
    from concurrent.futures import ProcessPoolExecutor

    share = None if rate is None else rate / processes
    jobs = [
        (base, token, seconds, share, max(1, clients // processes), n) for n in range(processes)
    ]
    total: Counter[str] = Counter()
    sent = 0
    with ProcessPoolExecutor(processes) as pool:
        for statuses, n in pool.map(_drive_process, jobs):
            total.update(statuses)
            sent += n
    return total, sent


def overload_run(
    workdir: Path,
    *,
    seconds: float,
    clients: int,
    processes: int = 4,
    state_max_mb: int = 64,
    queue_max_mb: int = 64,
    memory_max_mb: int = 512,
    batch_max_events: int = 50_000,
) -> dict[str, Any]:
    """Measure ingest capacity, then offer 10x it for ``seconds``; status counts and peak RSS.

    The service runs with its memory bounds set (``runtime.state_max_bytes``,
    ``runtime.queue_max_bytes`` and the ceiling ``runtime.memory_max_bytes``); its peak RSS
    under overload is set against the ceiling.
    """
    import httpx
    import psutil

    token = "faults-bench-ingest-token-0123456789"
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        service = ServiceProcess(
            Path(tmp),
            http={"enabled": True, "host": "127.0.0.1", "port": port, "token": token},
            snapshot_interval_s=30.0,
            runtime={
                "state_max_bytes": state_max_mb * 2**20,
                "queue_max_bytes": queue_max_mb * 2**20,
                "memory_max_bytes": memory_max_mb * 2**20,
                "batch_max_events": batch_max_events,
            },
        )
        service.start()
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        if not wait_until(up, timeout=60):
            service.kill()
            raise SystemExit(f"ingest did not come up:\n{service.log_tail()}")
        proc = psutil.Process(service.pid)
        peak = [proc.memory_info().rss, proc.memory_info().rss]  # [start, peak]
        stop_sampling = threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.05):
                try:
                    peak[1] = max(peak[1], proc.memory_info().rss)
                except psutil.Error:
                    return

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        # Capacity: saturate for a few seconds and count what the pipeline processed.
        processed0, t0 = _processed(base), time.monotonic()
        _drive_all(base, token, 6.0, None, clients, processes)
        capacity = (_processed(base) - processed0) / (time.monotonic() - t0)
        wait_until(lambda: _metrics(base).get("shopwatch_sources_queued_lines", 0) == 0, 60, 0.5)
        target = 10 * max(capacity, 1.0)
        statuses, offered = _drive_all(base, token, seconds, target, clients, processes)
        # Each client schedules over exactly ``seconds`` (then waits for its last answers).
        offered_rate = offered / seconds
        scheduled_rate = (offered + statuses.get("not_sent", 0) * _PER_REQUEST) / seconds
        stop_sampling.set()
        sampler.join()
        alive = service.is_running()
        service.terminate()
    return {
        "capacity_events_per_s": round(capacity),
        "target_events_per_s": round(target),
        "offered_events_per_s": round(offered_rate),
        "scheduled_events_per_s": round(scheduled_rate),
        "seconds": seconds,
        "clients": clients,
        "processes": processes,
        "statuses": dict(sorted(statuses.items())),
        "rss_start_mb": round(peak[0] / 2**20),
        "rss_peak_mb": round(peak[1] / 2**20),
        "rss_growth_mb": round((peak[1] - peak[0]) / 2**20),
        "state_max_mb": state_max_mb,
        "queue_max_mb": queue_max_mb,
        "memory_max_mb": memory_max_mb,
        "under_ceiling": peak[1] < memory_max_mb * 2**20,
        "batch_max_events": batch_max_events,
        "service_alive": alive,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=4000.0, help="lines/s appended")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--overload-s", type=float, default=20.0)
    parser.add_argument(
        "--clients", type=int, default=256, help="most ingest requests in flight at once"
    )
    parser.add_argument("--processes", type=int, default=4, help="client processes")
    parser.add_argument("--skip-overload", action="store_true")
    parser.add_argument("--skip-crash", action="store_true")
    parser.add_argument("--state-max-mb", type=int, default=64, help="runtime.state_max_bytes")
    parser.add_argument("--queue-max-mb", type=int, default=64, help="runtime.queue_max_bytes")
    parser.add_argument("--memory-max-mb", type=int, default=512, help="runtime.memory_max_bytes")
    parser.add_argument(
        "--batch-max-events", type=int, default=50_000, help="runtime.batch_max_events"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="shopwatch-faults-") as tmp:
        if not args.skip_crash:
            _print_crash(
                crash_run(
                    Path(tmp), kills=args.kills, lines=args.lines, rate=args.rate, seed=args.seed
                )
            )
        if not args.skip_overload:
            load = overload_run(
                Path(tmp),
                seconds=args.overload_s,
                clients=args.clients,
                processes=args.processes,
                state_max_mb=args.state_max_mb,
                queue_max_mb=args.queue_max_mb,
                memory_max_mb=args.memory_max_mb,
                batch_max_events=args.batch_max_events,
            )
            statuses = " ".join(f"{k}:{v}" for k, v in load["statuses"].items())
            print(
                f"overload: capacity={load['capacity_events_per_s']}/s "
                f"target={load['target_events_per_s']}/s scheduled={load['scheduled_events_per_s']}/s "
                f"sent={load['offered_events_per_s']}/s "
                f"for {load['seconds']}s from {load['clients']} connections in {load['processes']} "
                f"processes; statuses {statuses}; "
                f"rss start={load['rss_start_mb']}MB peak={load['rss_peak_mb']}MB "
                f"growth={load['rss_growth_mb']}MB under ceiling={load['memory_max_mb']}MB: "
                f"{'yes' if load['under_ceiling'] else 'NO'} (bounds state={load['state_max_mb']}MB "
                f"+ queue={load['queue_max_mb']}MB, batches of {load['batch_max_events']}); "
                f"alive={load['service_alive']}"
            )


def _print_crash(crash: dict[str, Any]) -> None:
    print(
        f"crash: lines={crash['lines']} kills={crash['kills']} rotations={crash['rotations']} "
        f"expected={crash['expected']} stored={crash['stored']} lost={crash['lost']} "
        f"duplicated={crash['duplicated']} elapsed={crash['elapsed_s']}s "
        f"exit={crash['exit_code']}",
        flush=True,
    )


if __name__ == "__main__":
    main()
