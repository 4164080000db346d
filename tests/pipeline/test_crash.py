"""``kill -9`` while tailing: a real ``shopwatch run`` subprocess, killed and restarted.

The tailed file holds a labelled mix (:func:`bench.faults.attack_mix`): brute-force bursts,
each from its own address and known to give exactly one ``auth.brute_force_ip`` alert,
spread among benign logins. The file is written in stages that end in the middle of a
burst, so every kill leaves a burst half seen: its first half must survive the crash (in
the restored state, or read again), and alerts stored before the crash must not come
twice. The kills happen after alerts were stored, right after a start, and around a
rotation done while the service is down. Assertions are on the stored alerts only.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from bench.faults import (
    ATTEMPTS,
    RULE,
    ServiceProcess,
    attack_mix,
    stored_alerts,
    tally,
    wait_until,
)

BURSTS = 8
SPAN = 60  # lines per burst
WAIT_S = 40.0  # upper bound of one wait; each normally takes a few seconds


def _last_attempt(k: int) -> int:
    return k * SPAN + round((ATTEMPTS - 1) * SPAN / ATTEMPTS)


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str | None:
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("pg_url")
    return url


def test_sigkill_loses_and_duplicates_no_alert(tmp_path: Path, store_url: str | None) -> None:
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    mix = attack_mix(BURSTS, SPAN, start=start, step=timedelta(milliseconds=50))
    log = tmp_path / "logs" / "auth.ndjson"
    log.parent.mkdir()
    service = ServiceProcess(
        tmp_path / "service",
        files=[{"path": str(log), "format": "ecs"}],
        # No periodic snapshot between a start and its kill: what was processed since the
        # last durable checkpoint exists only in the killed process.
        snapshot_interval_s=3600.0,
        store_url=store_url,
    )
    cuts = [SPAN // 2, 2 * SPAN + SPAN // 2, 4 * SPAN + SPAN // 2, 6 * SPAN + SPAN // 2]

    def complete_before(cut: int) -> set[str]:
        return {ip for k, ip in enumerate(mix.attackers) if _last_attempt(k) < cut}

    def stored_ips() -> set[str]:
        return {a["ip"] for a in stored_alerts(service.url) if a["rule_id"] == RULE}

    def run_until(cut: int) -> None:
        want = complete_before(cut)
        service.start()
        try:
            ok = wait_until(lambda: stored_ips() >= want, WAIT_S)
            assert ok, f"alerts of {sorted(want - stored_ips())} not stored:\n{service.log_tail()}"
            # Let the batch that stored them be acked (its offsets committed, before the fix).
            wait_until(lambda: False, 0.5)
        finally:
            service.kill()

    try:
        _append(log, mix.lines[: cuts[0]])  # half of burst 0
        service.start()
        wait_until(lambda: (service.workdir / "data").exists(), WAIT_S)
        service.kill()  # killed while starting
        _append(log, mix.lines[cuts[0] : cuts[1]])
        run_until(cuts[1])  # bursts 0-1 alerted, half of burst 2 seen, then SIGKILL
        _append(log, mix.lines[cuts[1] : cuts[2]])
        run_until(cuts[2])
        log.rename(log.with_name("auth.ndjson.1"))  # rotated while down
        _append(log, mix.lines[cuts[2] : cuts[3]])
        run_until(cuts[3])
        _append(log, mix.lines[cuts[3] :])
        service.start()
        wait_until(lambda: stored_ips() >= set(mix.attackers), WAIT_S)
        wait_until(lambda: False, 0.5)  # a late duplicate would be stored by now
        assert service.terminate() == 0, service.log_tail()
    finally:
        service.kill()

    result = tally(mix.attackers, stored_alerts(service.url))
    assert result == {"expected": BURSTS, "stored": BURSTS, "lost": 0, "duplicated": 0}, (
        f"{result}\n{service.log_tail()}"
    )
