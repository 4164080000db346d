"""Live monitoring end to end: a tailed file → parse → detect → store, across a restart."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shopwatch.config import FileSource, Settings
from shopwatch.pipeline.service import Service

T0 = datetime(2026, 3, 14, 9, 0, tzinfo=UTC)


def lines(start: int, count: int, ip: str) -> str:
    out = []
    for i in range(start, start + count):
        ts = (T0 + timedelta(seconds=5 * i)).strftime("%d/%b/%Y:%H:%M:%S +0000")
        out.append(
            f'{ip} - - [{ts}] "POST /account/login HTTP/1.1" 401 512 "-" "python-requests/2.31.0"\n'
        )
    return "".join(out)


def wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def settings(tmp_path: Path, log: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        sources={"files": [FileSource(path=str(log), format="nginx")]},
        web={"enabled": False},
        enrich={"geo": {"enabled": False}},
        # Each address's own alert is what is checked, not one campaign of both.
        detectors={"web.login_brute_force": {"params": {"campaign": None}}},
    )


def test_tailed_file_raises_alerts_and_a_restart_resumes_exactly(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(0, 25, "141.98.11.60"))
    first = Service(settings(tmp_path, log), with_web=False)
    first.start()
    try:
        wait_for(lambda: first.runner.stats.lines == 25)
        wait_for(lambda: first.store.count_alerts() == 1)
        alert = first.store.alerts()[0]
        assert alert.rule_id == "web.login_brute_force"
        assert alert.entity == {"source.ip": "141.98.11.60"}
        assert alert.event_ids[0] == "access.log:1"
    finally:
        first.stop()

    with log.open("a") as handle:  # written while shopwatch was down
        handle.write(lines(25, 10, "141.98.11.60"))
        handle.write(lines(35, 22, "193.32.162.45"))
    second = Service(settings(tmp_path, log), with_web=False)
    assert second.runner.engine.stats.events == 25, "the checkpoint restored the counters"
    second.start()
    try:
        wait_for(lambda: second.runner.stats.lines == 32)
        wait_for(lambda: second.store.count_alerts() == 2)
        time.sleep(0.3)
        assert second.runner.stats.lines == 32, "nothing read twice"
        newest = second.store.alerts()[0]
        assert newest.entity == {"source.ip": "193.32.162.45"}
        assert newest.event_ids[0] == "access.log:36", "line numbers continue across the restart"
    finally:
        second.stop()
    assert second.runner.engine.stats.events == 57


def test_http_ingest_events_reach_the_detectors(tmp_path: Path) -> None:
    import httpx

    from shopwatch.config import HttpIngestSettings, SourcesSettings

    token = "ingest-token-for-the-test-0123456789"
    service = Service(
        Settings(
            data_dir=tmp_path / "data",
            sources=SourcesSettings(http=HttpIngestSettings(enabled=True, port=0, token=token)),
            web={"enabled": False},
        ),
        with_web=False,
    )
    service.start()
    try:
        assert service._sources is not None
        port = next(s.port for s in service._sources.sources if s.name == "http")
        events = "\n".join(
            json.dumps(
                {
                    "@timestamp": (T0 + timedelta(seconds=3 * i)).isoformat(),
                    "event": {"dataset": "shop.auth", "action": "login", "outcome": "failure"},
                    "source.ip": "45.134.26.10",
                    "user": {"name": f"user{i}@example.org"},
                }
            )
            for i in range(30)
        )
        answer = httpx.post(
            f"http://127.0.0.1:{port}/ingest",
            content=events + "\nnot json\n",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            timeout=10,
        )
        assert answer.status_code == 200
        assert answer.json()["accepted"] == 30
        wait_for(
            lambda: {a.rule_id for a in service.store.alerts()} >= {"auth.credential_stuffing"}
        )
        refused = httpx.post(f"http://127.0.0.1:{port}/ingest", content=events, timeout=10)
        assert refused.status_code == 401
    finally:
        service.stop()


def test_offsets_are_saved_only_with_the_state_that_saw_their_lines(tmp_path: Path) -> None:
    from shopwatch.pipeline.engine import Engine
    from shopwatch.pipeline.service import CHECKPOINT, OFFSETS

    def saved(service: Service) -> tuple[int, int]:
        """(lines in the saved offsets, events in the saved engine state)."""
        offsets = service.store.load_checkpoint(OFFSETS)
        state = service.store.load_checkpoint(CHECKPOINT)
        assert offsets is not None and state is not None
        (entry,) = json.loads(offsets)["files"].values()
        probe = Engine([])
        probe.restore(state)
        return int(entry["line"]), probe.stats.events

    log = tmp_path / "access.log"
    log.write_text(lines(0, 25, "141.98.11.60"))
    config = settings(tmp_path, log)
    config.runtime.snapshot_interval_s = 3600.0  # no periodic checkpoint during the test
    service = Service(config, with_web=False)
    service.start()
    try:
        wait_for(lambda: service.store.count_alerts() == 1)
        wait_for(lambda: service.store.load_checkpoint(OFFSETS) is not None)
        # The new file's start position asked for a checkpoint: taken before or after the
        # first batch, its offsets and its state agree.
        before = saved(service)
        assert before in {(0, 0), (25, 25)}
        with log.open("a") as handle:
            handle.write(lines(25, 10, "193.32.162.45"))
        wait_for(lambda: service.runner.stats.lines == 35)
        assert saved(service) == before, "offsets did not move ahead of the saved state"
        assert not (tmp_path / "data" / "sources" / "offsets.json").exists()
        service.runner.request_checkpoint()
        wait_for(lambda: saved(service) == (35, 35))
    finally:
        service.stop()
    assert saved(service) == (35, 35)


def test_offsets_of_an_older_version_are_taken_over(tmp_path: Path) -> None:
    from shopwatch.sources.registry import FileOffset, OffsetRegistry

    log = tmp_path / "access.log"
    log.write_text(lines(0, 25, "141.98.11.60"))
    size = log.stat().st_size
    st = log.stat()
    import hashlib

    head = log.read_bytes()[:256]
    OffsetRegistry(tmp_path / "data" / "sources" / "offsets.json").commit(
        FileOffset(
            str(log), st.st_dev, st.st_ino, size, 25, hashlib.sha256(head).hexdigest(), len(head)
        )
    )
    with log.open("a") as handle:
        handle.write(lines(25, 22, "193.32.162.45"))
    service = Service(settings(tmp_path, log), with_web=False)
    service.start()
    try:
        wait_for(lambda: service.runner.stats.lines == 22)
        wait_for(lambda: service.store.count_alerts() == 1)
        assert service.store.alerts()[0].event_ids[0] == "access.log:26"
    finally:
        service.stop()
