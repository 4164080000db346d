"""Reading the CSIC 2010 raw HTTP request files into http.access batches (test helper)."""

from __future__ import annotations

import gzip
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from shopwatch.contract import conform

_START = re.compile(r"^(?:GET|POST|PUT) ", re.M)


def read_requests(path: Path, source_ip: str = "192.0.2.10") -> pl.DataFrame:
    """One http.access event per request: method, URL (path + query) and body.

    Every request gets its own second of event time and the same client address, as a
    reverse proxy in front of the shop would log them.
    """
    text = gzip.decompress(path.read_bytes()).decode("latin-1")
    starts = [m.start() for m in _START.finditer(text)]
    rows = []
    t0 = datetime(2010, 6, 1, tzinfo=UTC)
    for n, (a, b) in enumerate(zip(starts, [*starts[1:], len(text)], strict=True)):
        head, _, rest = text[a:b].replace("\r\n", "\n").partition("\n\n")
        method, url, _version = head.split("\n", 1)[0].split(" ", 2)
        url = url.replace("http://localhost:8080", "", 1)
        url_path, _, query = url.partition("?")
        rows.append(
            {
                "@timestamp": t0 + timedelta(seconds=n),
                "event.id": f"{path.name}:{n + 1}",
                "event.dataset": "http.access",
                "source.ip": source_ip,
                "http.request.method": method,
                "url.original": url,
                "url.path": url_path,
                "url.query": query or None,
                "http.request.body.content": rest.strip("\n") or None,
            }
        )
    return conform(pl.DataFrame(rows))
