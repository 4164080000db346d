"""Readers of the simulator's four formats (our own regexes, independent of shopwatch.parse)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

NGINX = re.compile(
    r'^(?P<ip>\d{1,3}(?:\.\d{1,3}){3}) - (?P<user>\S+) '
    r"\[(?P<time>\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000)\] "
    r'"(?P<method>[A-Z]+) (?P<target>\S+) (?P<proto>HTTP/[12]\.[01])" (?P<status>\d{3}) (?P<size>\d+) '
    r'"(?P<ref>[^"]*)" "(?P<ua>[^"]*)" (?P<rt>\d+\.\d{3})$'
)
SYSLOG = re.compile(
    r"^(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<day>[ \d]\d) "
    r"(?P<time>\d{2}:\d{2}:\d{2}) (?P<host>[\w.-]+) (?P<prog>[\w-]+)\[(?P<pid>\d+)\]: (?P<msg>.+)$"
)
VPC = re.compile(
    r"^2 \d{12} eni-[0-9a-f]{17} (\d{1,3}(?:\.\d{1,3}){3}) (\d{1,3}(?:\.\d{1,3}){3}) (\d+) (\d+) "
    r"(\d+) (\d+) (\d+) (\d{10}) (\d{10}) (ACCEPT|REJECT) OK$"
)
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def nginx_rows(path: Path) -> list[dict[str, Any]]:
    """Every access-log line as a dict (``ts`` epoch seconds); raises on a bad line."""
    rows = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        m = NGINX.match(line)
        assert m, f"{path.name}:{no} is not nginx combined + request time: {line!r}"
        row: dict[str, Any] = m.groupdict()
        row["ts"] = datetime.strptime(row["time"], "%d/%b/%Y:%H:%M:%S %z").timestamp()
        row["status"] = int(row["status"])
        row["path"] = row["target"].split("?")[0]
        rows.append(row)
    return rows


def syslog_rows(path: Path, year: int) -> list[dict[str, Any]]:
    """Every auth.log line as a dict (``ts`` epoch seconds, UTC, given year)."""
    rows = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        m = SYSLOG.match(line)
        assert m, f"{path.name}:{no} is not RFC 3164: {line!r}"
        row: dict[str, Any] = m.groupdict()
        stamp = f"{year} {row['mon']} {row['day'].strip()} {row['time']}"
        row["ts"] = datetime.strptime(stamp, "%Y %b %d %H:%M:%S").replace(tzinfo=UTC).timestamp()
        rows.append(row)
    return rows


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested ECS objects to dotted keys."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def ecs_rows(path: Path) -> list[dict[str, Any]]:
    """Every NDJSON line, flattened, with ``ts`` (epoch seconds)."""
    rows = []
    for no, line in enumerate(path.read_text().splitlines(), 1):
        doc = json.loads(line)
        assert isinstance(doc, dict), f"{path.name}:{no} is not an object"
        row = flatten(doc)
        assert RFC3339_Z.match(row["@timestamp"]), f"{path.name}:{no} bad @timestamp {row['@timestamp']!r}"
        row["ts"] = datetime.fromisoformat(row["@timestamp"].replace("Z", "+00:00")).timestamp()
        rows.append(row)
    return rows
