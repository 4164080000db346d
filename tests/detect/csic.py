"""The CSIC 2010 request files as http.access batches for the detector tests."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from shopwatch.evaluate.http_requests import read_requests as read_file


def read_requests(path: Path, source_ip: str = "192.0.2.10") -> pl.DataFrame:
    """One http.access event per request, all from ``source_ip``, one second apart.

    One client address for the whole file, as a reverse proxy in front of the shop would
    log them; the package reader leaves the address empty because the files have none.
    """
    read = read_file(path)
    assert read.rejects.height == 0, read.rejects.head(5)
    return read.batch.with_columns(pl.lit(source_ip).alias("source.ip"))
