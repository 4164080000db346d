"""Lines that once crashed a parser (and with it `replay`, or a live batch), and good lines
of every format to put around them.

Each hostile line names the reject reason it must get. The good lines of nginx, ECS and
syslog raise alerts (SQL injection probes, SSH brute force), so a test can check that the
lines around a bad one still reach the detectors.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

T0 = datetime(2024, 10, 10, 13, 0, tzinfo=UTC)
SQLI = "/search?q=1%27%20UNION%20SELECT%20password%20FROM%20users--"
SUFFIX = {"nginx": "log", "ecs": "ndjson", "syslog": "log", "vpcflow": "log"}


class Hostile(NamedTuple):
    """One line of ``fmt`` that must become a reject with ``reason``."""

    fmt: str
    line: str
    reason: str


def _nginx(ts: str, tail: str = "0.1", size: str = "5") -> str:
    return f'203.0.113.9 - - [{ts}] "GET / HTTP/1.1" 200 {size} "-" "Mozilla/5.0" {tail}'


def _ecs(**fields: object) -> str:
    return json.dumps({"event.dataset": "shop.auth", **fields})


def _flow(start: str, end: str, size: str = "840") -> str:
    return f"2 123456789012 eni-0a1 10.0.0.1 10.0.0.2 443 49152 6 10 {size} {start} {end} ACCEPT OK"


_DEEP = (
    '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"shop.auth","a":'
    + '{"b":' * 1000
    + "1"
    + "}" * 1000
    + "}"
)

HOSTILE: dict[str, Hostile] = {
    "nginx_request_time_1e11_s": Hostile(
        "nginx", _nginx("10/Oct/2024:13:08:20 +0000", "100000000000"), "bad_number"
    ),
    "nginx_request_time_1e11_s_with_xff": Hostile(
        "nginx", _nginx("10/Oct/2024:13:08:20 +0000", '100000000000 "198.51.100.1"'), "bad_number"
    ),
    "nginx_bytes_beyond_int64": Hostile(
        "nginx", _nginx("10/Oct/2024:13:08:20 +0000", size="99999999999999999999"), "bad_number"
    ),
    "nginx_year_minus_1": Hostile("nginx", _nginx("10/Oct/-001:13:08:20 +0000"), "bad_timestamp"),
    "nginx_year_0": Hostile("nginx", _nginx("01/Jan/0000:00:00:00 +0000"), "bad_timestamp"),
    "nginx_9999_at_minus_14h": Hostile(
        "nginx", _nginx("31/Dec/9999:23:59:59 -1400"), "bad_timestamp"
    ),
    "ecs_nested_1000_deep": Hostile("ecs", _DEEP, "too_deep"),
    "ecs_nested_2000_deep": Hostile("ecs", "[" * 2000 + "]" * 2000, "too_deep"),
    "ecs_array_nested_300_deep": Hostile(
        "ecs",
        '{"@timestamp":"2024-10-10T13:00:00Z","event.dataset":"shop.auth","user.roles":'
        + "[" * 300
        + "]" * 300
        + "}",
        "too_deep",
    ),
    "ecs_year_0": Hostile("ecs", _ecs(**{"@timestamp": "0000-01-01T00:00:00Z"}), "bad_timestamp"),
    "ecs_epoch_ms_year_10000": Hostile(
        "ecs", _ecs(**{"@timestamp": 253402300800000}), "bad_timestamp"
    ),
    "ecs_epoch_ms_text_year_10000": Hostile(
        "ecs", _ecs(**{"@timestamp": "253402300800000"}), "bad_timestamp"
    ),
    "ecs_epoch_ms_beyond_microseconds": Hostile(
        "ecs", _ecs(**{"@timestamp": 9_000_000_000_000_000}), "bad_timestamp"
    ),
    "syslog_rfc5424_year_0": Hostile(
        "syslog", "<34>1 0000-10-11T22:14:15.003Z host su - ID47 - su root failed", "bad_timestamp"
    ),
    "syslog_rfc5424_9999_at_minus_14h": Hostile(
        "syslog", "<34>1 9999-12-31T23:59:59-14:00 host su - ID47 - hello", "bad_timestamp"
    ),
    "vpcflow_start_year_10000": Hostile(
        "vpcflow", _flow("253402300800", "253402300860"), "bad_timestamp"
    ),
    "vpcflow_end_beyond_int64": Hostile(
        "vpcflow", _flow("1728565200", "9223372036854775807"), "bad_timestamp"
    ),
    "vpcflow_duration_beyond_int64_ns": Hostile(
        "vpcflow", _flow("-62135596800", "253402300799"), "bad_number"
    ),
    "vpcflow_bytes_beyond_int64": Hostile(
        "vpcflow", _flow("1728565200", "1728565260", size="99999999999999999999"), "bad_number"
    ),
}


def good_lines(fmt: str, count: int, start: datetime = T0) -> list[str]:
    """``count`` well-formed lines of ``fmt``, one second apart from ``start``."""
    out = []
    for i in range(count):
        when = start + timedelta(seconds=i)
        ip = f"203.0.113.{i % 50 + 1}"
        if fmt == "nginx":
            ts = when.strftime("%d/%b/%Y:%H:%M:%S +0000")
            out.append(f'{ip} - - [{ts}] "GET {SQLI}{i} HTTP/1.1" 200 5 "-" "Mozilla/5.0" 0.012')
        elif fmt == "ecs":
            out.append(
                json.dumps(
                    {
                        "@timestamp": when.isoformat().replace("+00:00", "Z"),
                        "event": {"dataset": "http.access", "action": "request"},
                        "source": {"ip": ip},
                        "url.original": f"{SQLI}{i}",
                    }
                )
            )
        elif fmt == "syslog":
            ts = when.isoformat()
            out.append(
                f"<38>1 {ts} shop-web-1 sshd 4242 - - Failed password for root from {ip} "
                f"port {40000 + i} ssh2"
            )
        else:
            first = int(when.timestamp())
            out.append(
                f"2 123456789012 eni-0a1 {ip} 10.0.0.2 {40000 + i} 443 6 10 840 "
                f"{first} {first + 60} ACCEPT OK"
            )
    return out


def with_bad_lines(
    fmt: str, count: int = 1000, start: datetime = T0
) -> tuple[list[str], dict[int, str]]:
    """Good lines of ``fmt`` with every hostile line of that format spread among them.

    Returns the lines and ``{line number: reason}`` of the hostile ones.
    """
    lines = good_lines(fmt, count, start)
    hostile = [h for h in HOSTILE.values() if h.fmt == fmt]
    expected: dict[int, str] = {}
    step = count // (len(hostile) + 1)
    for k, h in enumerate(hostile):
        at = (k + 1) * step + k  # 0-based index once the earlier ones are in
        lines.insert(at, h.line)
        expected[at + 1] = h.reason
    return lines, expected
