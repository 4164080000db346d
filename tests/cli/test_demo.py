"""``shopwatch demo`` for real: a subprocess, its web API on loopback, Ctrl-C, the database."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from shopwatch.store import Store


def test_demo_serves_live_alerts_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "SHOPWATCH_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "shopwatch.cli.main",
            "demo",
            "--data-dir",
            str(data),
            "--port",
            "0",
            "--speed",
            "10",
            "--customers",
            "800",
            "--plain",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stderr is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            found = re.search(r"(http://127\.0\.0\.1:\d+)/login\?token=(\S+)", line)
            if found:
                url, token = found.group(1), found.group(2)
        assert url is not None, "the demo printed no login link"
        assert (data / "web-token").read_text().strip() == token
        assert oct((data / "web-token").stat().st_mode & 0o777) == "0o600"
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{url}/api/alerts", timeout=5).status_code == 401
        alerts: list = []
        while not alerts and time.monotonic() < deadline + 30:
            alerts = httpx.get(f"{url}/api/alerts", headers=headers, timeout=5).json()
            time.sleep(1)
        assert alerts, "no alert within a minute of demo traffic"
        stats = httpx.get(f"{url}/api/stats", headers=headers, timeout=5).json()
        assert stats["runtime"]["events"] > 0
        metrics = httpx.get(f"{url}/metrics", timeout=5).text
        for name in (
            "shopwatch_parse_lines_total",
            "shopwatch_sources_lines",
            "shopwatch_enrich_feed_indicators",
        ):
            assert name in metrics, name
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "demo stopped" in err
    with Store(f"sqlite:///{data / 'shopwatch.db'}") as store:
        assert store.count_alerts() >= len(alerts)
        assert store.load_checkpoint("engine") is not None, (
            "the last checkpoint was written at stop"
        )


def test_the_demo_feed_sends_the_customers_past_first() -> None:
    """Account profiles need the shop's past: the feed's first lines are its last weeks."""
    import json
    import threading
    from datetime import UTC, datetime, timedelta

    from shopwatch.cli.live import DEMO_HISTORY_DAYS, run_feed

    sent: list[tuple[str, str, list[str], int]] = []
    stop = threading.Event()
    began = datetime.now(UTC)

    def submit(source: str, fmt: str, lines: list[str], first: int) -> bool:
        sent.append((source, fmt, lines, first))
        if fmt != "ecs" or json.loads(lines[-1])["@timestamp"] >= began.isoformat()[:19]:
            stop.set()
        return True

    run_feed(submit, stop, seed=3, speed=60.0, customers=300)
    past = [chunk for chunk in sent if chunk[0] == "simulator-ecs"]
    assert past, "the feed sent no shop events"
    first = json.loads(past[0][2][0])["@timestamp"]
    assert first < (began - timedelta(days=DEMO_HISTORY_DAYS - 2)).isoformat()
    numbers = [chunk[3] for chunk in past]
    sizes = [len(chunk[2]) for chunk in past]
    assert numbers == [1 + sum(sizes[:i]) for i in range(len(past))]  # line numbers follow on
