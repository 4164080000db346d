"""File tail on real files: append, partial lines, rotation, truncation, restart from offsets."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any

import pytest

from shopwatch.config import FileSource
from shopwatch.errors import ConfigError
from shopwatch.sources.base import ChunkQueue, ack
from shopwatch.sources.registry import OffsetRegistry
from shopwatch.sources.tail import TailSource
from tests.sources.conftest import assert_quiet, lines_of, numbered, running, take

POLL_S = 0.02


def nginx(i: int, path: str = "/product") -> str:
    """A realistic combined-format access log line."""
    return (
        f"203.0.113.{i % 250} - - [05/Mar/2024:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "
        f'"GET {path}/{i}?ref=home HTTP/1.1" 200 {512 + i} "https://shop.example/" '
        f'"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36"'
    )


def write(path: Path, lines: list[str], mode: str = "a") -> None:
    with open(path, mode, encoding="utf-8") as fh:
        fh.write("".join(f"{line}\n" for line in lines))


def tail(tmp_path: Path, queue: ChunkQueue, *specs: FileSource, **kwargs: Any) -> TailSource:
    return TailSource(
        list(specs), queue, tmp_path / "data" / "offsets.json", poll_interval_s=POLL_S, **kwargs
    )


def test_follows_appends_with_line_numbers(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, [nginx(i) for i in range(1, 4)])
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, FileSource(path=str(log), format="nginx"))], queue):
        first = take(queue, 3)
        write(log, [nginx(i) for i in range(4, 9)])
        second = take(queue, 5)
        assert_quiet(queue)
    chunks = first + second
    assert {(c.source, c.format) for c in chunks} == {("access.log", "nginx")}
    assert numbered(chunks) == [(i, nginx(i)) for i in range(1, 9)]


def test_partial_line_is_held_until_its_newline(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    with open(log, "wb") as fh:
        fh.write(nginx(1).encode() + b"\r\n" + nginx(2).encode()[:40])
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, FileSource(path=str(log), format="nginx"))], queue):
        assert lines_of(take(queue, 1)) == [nginx(1)]  # CR of CRLF stripped
        assert_quiet(queue)  # the half-written line waits
        with open(log, "ab") as fh:
            fh.write(
                nginx(2).encode()[40:] + b"\n" + "caf\xe9 latin-1 line".encode("latin-1") + b"\n"
            )
        chunks = take(queue, 2)
    assert numbered(chunks) == [(2, nginx(2)), (3, "café latin-1 line")]


def test_chunks_are_bounded_by_max_lines(tmp_path: Path) -> None:
    log = tmp_path / "big.log"
    write(log, [nginx(i) for i in range(1, 2501)])
    queue = ChunkQueue()
    source = tail(
        tmp_path, queue, FileSource(path=str(log), format="nginx"), max_lines=100, block_bytes=4096
    )
    with running([source], queue):
        chunks = take(queue, 2500)
    assert max(len(c.lines) for c in chunks) <= 100
    assert numbered(chunks) == [(i, nginx(i)) for i in range(1, 2501)]


def test_rotation_by_rename_reads_old_file_to_the_end_first(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    writer = open(log, "a", encoding="utf-8")  # noqa: SIM115 - the server's handle, kept across rename
    writer.write("".join(f"{nginx(i)}\n" for i in range(1, 4)))
    writer.flush()
    queue = ChunkQueue()
    source = tail(tmp_path, queue, FileSource(path=str(log), format="nginx"))
    with running([source], queue):
        assert numbered(take(queue, 3)) == [(i, nginx(i)) for i in range(1, 4)]
        os.rename(log, tmp_path / "access.log.1")  # logrotate: rename, then create
        writer.write("".join(f"{nginx(i)}\n" for i in range(4, 7)))  # still to the old file
        writer.flush()
        write(log, [nginx(i, "/new") for i in range(1, 3)], mode="w")
        chunks = take(queue, 5)
        writer.write(f"{nginx(7)}\n")  # a straggler within the grace period
        writer.flush()
        straggler = take(queue, 1)
        writer.close()
    assert numbered(chunks) == [
        (4, nginx(4)),
        (5, nginx(5)),
        (6, nginx(6)),
        (1, nginx(1, "/new")),
        (2, nginx(2, "/new")),
    ]
    # the new file's lines restart at 1: its name differs so that assigned ids do not repeat
    sources = [c.source for c in chunks for _ in c.lines]
    assert sources[:3] == ["access.log"] * 3
    assert all(s.startswith("access.log@") for s in sources[3:])
    assert numbered(straggler) == [(7, nginx(7))]
    assert source.rotations == 1


def test_glob_follows_renamed_file_and_skips_gz(tmp_path: Path) -> None:
    log = tmp_path / "shop.log"
    write(log, [nginx(i) for i in range(1, 3)])
    with gzip.open(tmp_path / "shop.log.2.gz", "wt") as gz:
        gz.write("".join(f"{nginx(i, '/old')}\n" for i in range(1, 50)))
    queue = ChunkQueue()
    source = tail(tmp_path, queue, FileSource(path=str(tmp_path / "shop.log*"), format="nginx"))
    with running([source], queue):
        assert numbered(take(queue, 2)) == [(1, nginx(1)), (2, nginx(2))]
        os.rename(log, tmp_path / "shop.log.1")  # still matched by the glob
        write(tmp_path / "shop.log.1", [nginx(3)])
        write(log, [nginx(1, "/new")], mode="w")
        chunks = take(queue, 2)
        assert_quiet(queue)
    assert numbered(chunks) == [(3, nginx(3)), (1, nginx(1, "/new"))]
    assert source.rotations == 0  # a rename within the globs is not a rotation


def test_copytruncate_restarts_at_zero(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    write(log, [nginx(i) for i in range(1, 11)])
    queue = ChunkQueue()
    source = tail(tmp_path, queue, FileSource(path=str(log), format="nginx"))
    with running([source], queue):
        take(queue, 10)
        (tmp_path / "app.log.1").write_bytes(log.read_bytes())  # copytruncate: copy,
        with open(log, "r+b") as fh:  # then truncate in place (same inode)
            fh.truncate(0)
        write(log, [nginx(i, "/after") for i in range(1, 4)])
        chunks = take(queue, 3)
        assert_quiet(queue)
    assert numbered(chunks) == [(i, nginx(i, "/after")) for i in range(1, 4)]
    assert source.truncations == 1
    text = source.metrics.registry.get_sample_value("shopwatch_sources_truncations_total")
    assert text == 1.0


@pytest.mark.parametrize(
    ("new_path", "count"), [("/x", 5), ("/prodxct", 2)], ids=["longer", "same-size"]
)
def test_rewritten_file_is_detected_by_fingerprint(
    tmp_path: Path, new_path: str, count: int
) -> None:
    log = tmp_path / "app.log"
    write(log, [nginx(1), nginx(2)])
    queue = ChunkQueue()
    source = tail(tmp_path, queue, FileSource(path=str(log), format="nginx"))
    with running([source], queue):
        take(queue, 2)
        rewritten = "".join(f"{nginx(i, new_path)}\n" for i in range(1, count + 1)).encode()
        assert (len(rewritten) == log.stat().st_size) == (count == 2)
        fd = os.open(log, os.O_WRONLY)  # same inode, new content, at least as long as before
        os.ftruncate(fd, 0)
        os.pwrite(fd, rewritten, 0)
        os.close(fd)
        chunks = take(queue, count)
    assert numbered(chunks) == [(i, nginx(i, new_path)) for i in range(1, count + 1)]
    assert source.truncations == 1


def test_overlong_line_is_split_not_held(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"a" * 250)
    queue = ChunkQueue()
    source = tail(tmp_path, queue, FileSource(path=str(log)), max_line_bytes=100, block_bytes=64)
    with running([source], queue):
        first = take(queue, 2)
        with open(log, "ab") as fh:
            fh.write(b"\n" + b"GET /health 200\n")
        rest = take(queue, 2)
    assert [len(line) for line in lines_of(first + rest)] == [100, 100, 50, 15]
    assert [n for n, _ in numbered(first + rest)] == [1, 2, 3, 4]


@pytest.mark.parametrize("commit_interval_s", [0.0, 30.0], ids=["every-ack", "coalesced"])
def test_restart_resumes_after_the_acked_lines_exactly_once(
    tmp_path: Path, commit_interval_s: float
) -> None:
    log = tmp_path / "access.log"
    spec = FileSource(path=str(log), format="nginx")
    write(log, [nginx(i) for i in range(1, 51)])
    processed: list[tuple[int, str]] = []
    options = {"max_lines": 10, "block_bytes": 1 << 20, "commit_interval_s": commit_interval_s}

    queue = ChunkQueue()
    with running([tail(tmp_path, queue, spec, **options)], queue):
        run1 = take(queue, 50)
        assert [len(c.lines) for c in run1] == [10] * 5
        for chunk in run1[:2]:
            processed += numbered([chunk])
            ack(chunk.token)
    processed += numbered(run1[2:3])  # the pipeline finishes a chunk after the sources stopped
    ack(run1[2].token)  # chunks 4 and 5 were still in flight: never acked
    registry = json.loads((tmp_path / "data" / "offsets.json").read_text())
    (entry,) = registry["files"].values()
    assert (entry["line"], entry["path"]) == (30, str(log))

    write(log, [nginx(i) for i in range(51, 71)])
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, spec, **options)], queue):
        run2 = take(queue, 40)  # 31..50 again (never acked) and 51..70
        assert_quiet(queue)
        for chunk in run2:
            processed += numbered([chunk])
            ack(chunk.token)
    assert numbered(run2)[:20] == numbered(run1[3:])  # the unacked chunks came back
    assert len(processed) == 70
    assert processed == [(i, nginx(i)) for i in range(1, 71)]

    queue = ChunkQueue()  # everything acked: a third run has nothing to say
    with running([tail(tmp_path, queue, spec)], queue):
        assert_quiet(queue)


def test_out_of_order_acks_commit_only_the_acked_prefix(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    spec = FileSource(path=str(log), format="nginx")
    write(log, [nginx(i) for i in range(1, 31)])
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, spec, max_lines=10)], queue):
        c1, _c2, c3 = take(queue, 30)
        ack(c1.token)
        ack(c3.token)  # c2 is still being processed when we stop
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, spec, max_lines=10)], queue):
        again = take(queue, 20)
    assert numbered(again) == [(i, nginx(i)) for i in range(11, 31)]


def test_rotation_while_stopped_finishes_the_old_file_first(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    spec = FileSource(path=str(log), format="nginx")
    write(log, [nginx(i) for i in range(1, 6)])
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, spec)], queue):
        for chunk in take(queue, 5):
            ack(chunk.token)
    write(log, [nginx(i) for i in range(6, 8)])  # written, then rotated while we were down
    os.rename(log, tmp_path / "access.log.1")
    write(log, [nginx(1, "/new")], mode="w")
    queue = ChunkQueue()
    source = tail(tmp_path, queue, spec, rotate_grace_s=0.0)
    with running([source], queue):
        chunks = take(queue, 3)
        for chunk in chunks:
            ack(chunk.token)
        assert_quiet(queue)
    assert numbered(chunks) == [(6, nginx(6)), (7, nginx(7)), (1, nginx(1, "/new"))]
    # the finished rotated file is forgotten; the new one is recorded
    entries = OffsetRegistry(tmp_path / "data" / "offsets.json").entries()
    assert [(e.path, e.line) for e in entries] == [(str(log), 1)]


def test_from_end_skips_existing_lines_but_keeps_numbering(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write(log, [nginx(i) for i in range(1, 101)])
    queue = ChunkQueue()
    spec = FileSource(path=str(log), format="nginx", from_beginning=False)
    with running([tail(tmp_path, queue, spec)], queue):
        assert_quiet(queue)
        write(log, [nginx(101)])
        chunks = take(queue, 1)
    assert numbered(chunks) == [(101, nginx(101))]


def test_file_created_later_is_picked_up(tmp_path: Path) -> None:
    log = tmp_path / "later.log"
    queue = ChunkQueue()
    with running([tail(tmp_path, queue, FileSource(path=str(log), format="auto"))], queue):
        assert_quiet(queue, 0.1)
        write(log, [nginx(1)])
        chunks = take(queue, 1)
    assert (chunks[0].format, numbered(chunks)) == ("auto", [(1, nginx(1))])


def test_bad_configuration_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        TailSource([], ChunkQueue(), tmp_path / "offsets.json")
    (tmp_path / "offsets.json").write_text("{not json")
    with pytest.raises(ConfigError, match="offset registry"):
        TailSource(
            [FileSource(path=str(tmp_path / "x.log"))], ChunkQueue(), tmp_path / "offsets.json"
        )


def test_checkpoint_owned_offsets_resume_where_the_saved_copy_says(tmp_path: Path) -> None:
    """A registry without a file: offsets are durable only when the owner saves offsets()."""
    log = tmp_path / "access.log"
    spec = FileSource(path=str(log), format="nginx")
    write(log, [nginx(i) for i in range(1, 31)])
    positions: list[int] = []
    registry = OffsetRegistry()
    queue = ChunkQueue()
    source = TailSource(
        [spec],
        queue,
        registry,
        poll_interval_s=POLL_S,
        max_lines=10,
        on_position=lambda: positions.append(1),
    )
    with running([source], queue):
        c1, c2, c3 = take(queue, 30)
        ack(c1.token)
        saved = source.offsets()  # what a checkpoint taken now would hold
        ack(c2.token)
        ack(c3.token)  # processed after that checkpoint, then the process dies
    assert positions == [1], "the new file's start position was announced once"
    assert not list(tmp_path.rglob("*.json")), "no offset file is written on its own"
    (entry,) = json.loads(saved)["files"].values()
    assert entry["line"] == 10

    queue = ChunkQueue()
    again = TailSource(
        [spec], queue, OffsetRegistry.from_bytes(saved), poll_interval_s=POLL_S, max_lines=10
    )
    with running([again], queue):
        chunks = take(queue, 20)
        assert_quiet(queue)
    assert numbered(chunks) == [(i, nginx(i)) for i in range(11, 31)]


def test_saved_offsets_that_are_not_a_registry_are_refused() -> None:
    with pytest.raises(ConfigError, match="offset registry the checkpoint is unreadable"):
        OffsetRegistry.from_bytes(b'{"version": 1, "files": {"1:2": {"path": "x"}}}')
