"""Reading lines: plain, gzip (by magic), standard input, encodings, chunk boundaries."""

from __future__ import annotations

import gzip
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

import shopwatch.parse.read as read
from shopwatch.parse.read import file_mtime, file_year_hint, iter_chunks

BYTES = b"first\r\nsecond caf\xc3\xa9\nthird caf\xe9 latin-1\n\nlast without newline"
EXPECTED = ["first", "second caf\u00e9", "third caf\u00e9 latin-1", "", "last without newline"]


def _lines(path: str | Path, chunk_lines: int = 200_000) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    for chunk in iter_chunks(path, chunk_lines):
        assert chunk.schema == pl.Schema({"line": pl.String, "line_no": pl.Int64})
        out.extend(chunk.iter_rows())
    return out


def test_plain_and_encodings(tmp_path: Path) -> None:
    path = tmp_path / "mixed.log"
    path.write_bytes(BYTES)
    assert _lines(path) == [(s, i) for i, s in enumerate(EXPECTED, 1)]
    path.write_bytes(BYTES + b"\n")  # a final newline does not add a line
    assert len(_lines(path)) == 5
    (tmp_path / "empty.log").write_bytes(b"")
    assert _lines(tmp_path / "empty.log") == []


def test_gzip_by_magic_not_suffix(tmp_path: Path) -> None:
    disguised = tmp_path / "access.log.1"
    disguised.write_bytes(gzip.compress(BYTES))
    named = tmp_path / "access.log.gz"
    named.write_bytes(gzip.compress(BYTES))
    assert [s for s, _ in _lines(disguised)] == EXPECTED == [s for s, _ in _lines(named)]


def test_chunks_and_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(read, "BLOCK_BYTES", 7)  # lines straddle every block
    lines = [f"line {i} " + "x" * (i % 11) for i in range(1, 101)]
    path = tmp_path / "many.log"
    path.write_text("\n".join(lines))
    chunks = list(iter_chunks(path, 30))
    assert [c.height for c in chunks] == [30, 30, 30, 10]
    assert pl.concat(chunks)["line"].to_list() == lines
    assert pl.concat(chunks)["line_no"].to_list() == list(range(1, 101))
    with pytest.raises(ValueError):
        next(iter_chunks(path, 0))


@pytest.mark.parametrize("compress", [False, True])
def test_standard_input(tmp_path: Path, compress: bool) -> None:
    data = gzip.compress(BYTES) if compress else BYTES
    code = (
        "from shopwatch.parse.read import iter_chunks\n"
        "for c in iter_chunks('-', 2):\n"
        "    for line, no in c.iter_rows(): print(no, ascii(line))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], input=data, capture_output=True, check=True, timeout=60
    )
    assert out.stdout.decode().splitlines() == [f"{i} {s!a}" for i, s in enumerate(EXPECTED, 1)]


def test_year_hint(tmp_path: Path) -> None:
    path = tmp_path / "auth.log"
    path.write_text("x\n")
    stamp = datetime(2023, 12, 31, 23, 0, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))
    assert file_year_hint(path) == 2023
    assert file_mtime(path) == datetime(2023, 12, 31, 23, 0, tzinfo=UTC)
    assert file_year_hint("-") is None and file_year_hint(tmp_path / "missing") is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"GET /a\r\n\r\n\nlast\r", ["GET /a", "", "", "last"]),  # ASCII block
        (b"caf\xc3\xa9\r\n\xe2\x82\xac 5\n\n", ["caf\u00e9", "\u20ac 5", ""]),  # valid UTF-8
        (b"caf\xe9\r\ncaf\xc3\xa9\n\r\n", ["caf\u00e9", "caf\u00e9", ""]),  # one Latin-1 line
    ],
)
def test_block_kinds_keep_lines_and_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes, expected: list[str]
) -> None:
    path = tmp_path / "kinds.log"
    path.write_bytes(data)
    assert _lines(path) == [(s, i) for i, s in enumerate(expected, 1)]
    monkeypatch.setattr(read, "BLOCK_BYTES", 3)  # every line cut across blocks
    assert _lines(path, 2) == [(s, i) for i, s in enumerate(expected, 1)]
