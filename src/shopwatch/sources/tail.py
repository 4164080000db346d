"""Follow log files as they grow: globs, rotation, truncation, offsets committed on ack.

Files are polled (``poll_interval_s``, 100 ms by default; no inotify) and read in blocks
with ``os.pread``, so memory stays at about one block plus one partial line per file
whatever the file size. Complete lines go out in chunks of at most ``max_lines``; a
partial last line waits for its newline.

Files are tracked by identity (device, inode) checked against a fingerprint of their
first bytes, not by path:

- **rotation** (rename, then a new file under the old name): the renamed file is read to
  its end first, then the new file from offset 0. The old file stays open for
  ``rotate_grace_s`` more seconds, so lines a writer still appends to it after the rename
  are read too. A file that moves to another path matched by the globs keeps being read
  where it was. Compressed rotations (``.gz`` and the like) are never followed.
- **truncation** (copytruncate): a size below the read offset, or first bytes that no
  longer match the fingerprint, restart the file at offset 0 and line 1 (counted in
  ``shopwatch_sources_truncations_total`` and logged).

Offsets are committed to the :class:`~shopwatch.sources.registry.OffsetRegistry` only
when the pipeline acks a chunk, and only up to the longest acked prefix of a file's chunks,
so the registry never runs ahead of what was processed. A file listed in the registry
whose path now holds another file is looked for by inode in its folder and, when found,
read to its end before anything newer.

Where the registry is durable decides what a crash costs:

- **with the detector state** (what the live service does): the registry has no file of
  its own; :meth:`TailSource.offsets` gives its content, which the service saves in the
  same store transaction as the engine snapshot. After ``kill -9`` the tail resumes
  exactly where the restored state stopped: the lines processed since that snapshot are
  delivered again (and their alerts, idempotent by id, are not stored twice), none are
  lost. ``on_position`` hears when a newly found file got its start position, so the
  owner can make it durable soon (a file rotated away before any checkpoint named it is
  named by nothing the tail keeps, and cannot be found again).
- **in its own file** (a tail used on its own): each ack is one atomic registry write;
  ``commit_interval_s`` > 0 coalesces the writes of acks arriving within that window (far
  fewer fsyncs), at the price that a crash — not a clean stop, which always writes what
  was acked — may deliver those last acked lines again.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import os
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from shopwatch.config import FileSource, Settings
from shopwatch.errors import ConfigError
from shopwatch.sources.base import AckToken, ChunkQueue, RawChunk, SourceMetrics, decode_lines
from shopwatch.sources.registry import FINGERPRINT_BYTES, FileOffset, OffsetRegistry, file_key

__all__ = ["COMPRESSED_SUFFIXES", "TailSource"]

log = structlog.get_logger("shopwatch.sources.tail")

#: Rotated files with these suffixes are compressed copies and are never followed.
COMPRESSED_SUFFIXES = frozenset({".gz", ".bz2", ".xz", ".zst", ".zip", ".lz4", ".z"})


def _fingerprint(fd: int, size: int) -> tuple[str, int]:
    """(sha256 hex, length) of the first ``min(size, FINGERPRINT_BYTES)`` bytes of ``fd``."""
    n = min(size, FINGERPRINT_BYTES)
    head = os.pread(fd, n, 0) if n else b""
    return hashlib.sha256(head).hexdigest(), len(head)


def _generation_name(name: str, inode: int) -> str:
    """The name of another file under base name ``name`` (after a rotation or truncation).

    Events without an id are named ``<name>:<line>``; lines restart at 1 in the new file,
    so its name carries its inode and the moment it was first followed to keep ids unique.
    """
    base = name.split("@", 1)[0]
    return f"{base}@{inode:x}.{time.time_ns() // 1_000_000:x}"


def _count_lines(path: str, limit: int, block: int = 1 << 20) -> tuple[int, int]:
    """(lines, byte offset after the last newline) within the first ``limit`` bytes of ``path``."""
    lines = 0
    end = 0
    pos = 0
    with open(path, "rb") as fh:
        while pos < limit:
            data = fh.read(min(block, limit - pos))
            if not data:
                break
            count = data.count(b"\n")
            if count:
                lines += count
                end = pos + data.rfind(b"\n") + 1
            pos += len(data)
    return lines, end


@dataclass(slots=True)
class _Followed:
    """One open file being read."""

    key: str
    dev: int
    inode: int
    path: str
    name: str
    format: str
    fd: int
    offset: int  # next byte to read; bytes before it are in lines sent or in ``partial``
    line: int  # lines sent so far
    fp: str
    fp_len: int
    partial: bytearray = field(default_factory=bytearray)
    rotated_at: float | None = None  # monotonic time it was found gone from its path


@dataclass(slots=True)
class _Pending:
    """Chunks of one file identity awaiting their ack, in delivery order."""

    generation: int = 0
    next_seq: int = 0
    # [seq, end offset, end line, path, fp, fp_len, acked]
    items: deque[list[Any]] = field(default_factory=deque)
    closed: bool = False
    name: str = ""


class TailSource:
    """Follow files (globs allowed), each with its format; see the module docstring."""

    def __init__(
        self,
        files: Sequence[FileSource],
        out: ChunkQueue,
        registry: OffsetRegistry | Path,
        *,
        name: str = "tail",
        poll_interval_s: float = 0.1,
        max_lines: int = 1000,
        block_bytes: int = 256 * 1024,
        max_line_bytes: int = 1024 * 1024,
        rotate_grace_s: float = 2.0,
        commit_interval_s: float = 0.0,
        metrics: SourceMetrics | None = None,
        on_position: Callable[[], None] | None = None,
    ) -> None:
        if not files:
            raise ConfigError("the file tail needs at least one path")
        if max_lines < 1 or block_bytes < 1 or max_line_bytes < 1:
            raise ConfigError("max_lines, block_bytes and max_line_bytes must be positive")
        self.name = name
        self.files = list(files)
        self.out = out
        self.registry = (
            registry if isinstance(registry, OffsetRegistry) else OffsetRegistry(registry)
        )
        self.poll_interval_s = poll_interval_s
        self.max_lines = max_lines
        self.block_bytes = block_bytes
        self.max_line_bytes = max_line_bytes
        self.rotate_grace_s = rotate_grace_s
        self.commit_interval_s = commit_interval_s
        self.metrics = metrics or SourceMetrics()
        self.on_position = on_position
        self.truncations = 0
        self.rotations = 0
        self._followed: dict[str, _Followed] = {}
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()  # _pending (loop thread and ack thread)
        self._commit_lock = threading.Lock()  # serialises registry writes and _dirty
        self._dirty: dict[str, FileOffset | None] = {}  # acked, not yet written (None: forget)
        self._last_write = 0.0
        self._running = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._warned_missing: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        out: ChunkQueue,
        metrics: SourceMetrics | None = None,
        *,
        registry: OffsetRegistry | None = None,
        on_position: Callable[[], None] | None = None,
    ) -> TailSource:
        """The tail of ``settings.sources.files``.

        Its offsets go to ``registry`` when given (the service's, saved with the engine
        checkpoint), else to the registry file ``data_dir/sources/offsets.json``.
        """
        return cls(
            settings.sources.files,
            out,
            registry if registry is not None else settings.data_dir / "sources" / "offsets.json",
            metrics=metrics,
            on_position=on_position,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Resume from the registry and start polling."""
        self._stopping = asyncio.Event()
        self._running = True
        self._task = asyncio.create_task(self._run(), name=f"{self.name}-poll")

    async def stop(self) -> None:
        """Stop reading and close every file (offsets stay as acked)."""
        self._stopping.set()
        if self._task is not None:
            await self._task
            self._task = None
        for f in self._followed.values():
            os.close(f.fd)
        self._followed.clear()
        self._running = False
        self.flush()

    def flush(self) -> None:
        """Write the acked offsets not yet written (only with ``commit_interval_s`` > 0)."""
        with self._commit_lock:
            self._write_dirty()

    def offsets(self) -> bytes:
        """The registry's content with every ack heard so far, for a checkpoint (thread-safe).

        Called by the pipeline right after it snapshotted the state that processed every
        acked chunk, so the two describe the same point of the input.
        """
        with self._commit_lock:
            self._write_dirty()
            return self.registry.dumps()

    def _write_dirty(self) -> None:
        if self._dirty:
            updates, self._dirty = self._dirty, {}
            self.registry.apply(updates)
        self._last_write = time.monotonic()

    async def _run(self) -> None:
        """Poll until stopped; a failing poll is logged (once per distinct error) and retried."""
        await self._resume_rotated()
        initial = True
        seen_errors: set[str] = set()
        while not self._stopping.is_set():
            try:
                await self._poll(initial)
                initial = False
                if self._dirty and time.monotonic() - self._last_write >= self.commit_interval_s:
                    self.flush()
            except Exception as err:  # keep following the other files; retried next poll
                text = f"{type(err).__name__}: {err}"
                if text not in seen_errors:
                    seen_errors.add(text)
                    log.exception("tail_poll_failed", source=self.name, error=text)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.poll_interval_s)

    # -- discovery -------------------------------------------------------------------

    def _scan(self) -> dict[str, tuple[str, os.stat_result, FileSource]]:
        """Regular, uncompressed files matching the specs now: identity → (path, stat, spec)."""
        found: dict[str, tuple[str, os.stat_result, FileSource]] = {}
        for spec in self.files:
            paths = sorted(glob.glob(spec.path)) if glob.has_magic(spec.path) else [spec.path]
            matched = False
            for path in paths:
                if Path(path).suffix.lower() in COMPRESSED_SUFFIXES:
                    continue
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                matched = True
                found.setdefault(file_key(st.st_dev, st.st_ino), (path, st, spec))
            if not matched and spec.path not in self._warned_missing:
                self._warned_missing.add(spec.path)
                log.info("tail_waiting_for_file", path=spec.path)
            elif matched:
                self._warned_missing.discard(spec.path)
        return found

    async def _resume_rotated(self) -> None:
        """Reopen registry files that were rotated away while we were down, to finish them."""
        for entry in self.registry.entries():
            try:
                st = os.stat(entry.path)
                if (st.st_dev, st.st_ino) == (entry.dev, entry.inode):
                    continue  # still at its path: the first scan picks it up
            except FileNotFoundError:
                pass
            moved = self._find_by_inode(Path(entry.path).parent, entry.dev, entry.inode)
            if moved is None:
                log.info("offset_forgotten", path=entry.path, reason="file_gone")
                self.registry.remove(entry.key)
                continue
            f = self._open(
                moved, entry.name or Path(entry.path).name, "auto", entry, resume_only=True
            )
            if f is None:
                self.registry.remove(entry.key)
                continue
            spec = self._spec_for(entry.path)
            f.format = spec.format if spec is not None else "auto"
            f.rotated_at = time.monotonic()
            self._followed[f.key] = f
            log.info("rotated_file_resumed", path=moved, offset=f.offset, line=f.line)

    def _spec_for(self, path: str) -> FileSource | None:
        for spec in self.files:
            if spec.path == path or (glob.has_magic(spec.path) and Path(path).match(spec.path)):
                return spec
        return None

    @staticmethod
    def _find_by_inode(folder: Path, dev: int, inode: int) -> str | None:
        try:
            with os.scandir(folder) as it:
                for item in it:
                    if (
                        item.inode() != inode
                        or Path(item.name).suffix.lower() in COMPRESSED_SUFFIXES
                    ):
                        continue
                    st = item.stat(follow_symlinks=False)
                    if st.st_dev == dev and stat.S_ISREG(st.st_mode):
                        return item.path
        except OSError:
            return None
        return None

    def _open(
        self, path: str, name: str, fmt: str, entry: FileOffset | None, *, resume_only: bool = False
    ) -> _Followed | None:
        """Open ``path`` positioned at ``entry`` when its fingerprint matches, else at 0."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError as err:
            log.warning("file_open_failed", path=path, error=str(err))
            return None
        st = os.fstat(fd)
        key = file_key(st.st_dev, st.st_ino)
        f = _Followed(key, st.st_dev, st.st_ino, path, name, fmt, fd, 0, 0, "", 0)
        if entry is not None and entry.key == key:
            fp, fp_len = _fingerprint(fd, min(entry.fp_len, st.st_size))
            if fp_len == entry.fp_len and fp == entry.fp and st.st_size >= entry.offset:
                f.offset, f.line, f.fp, f.fp_len = entry.offset, entry.line, fp, fp_len
                f.name = entry.name or name
            else:
                log.warning("offset_discarded", path=path, reason="fingerprint_or_size_mismatch")
                if resume_only:
                    os.close(fd)
                    return None
        with self._lock:
            pending = self._pending.setdefault(key, _Pending())
            pending.name = f.name
        return f

    async def _poll(self, initial: bool) -> None:
        found = self._scan()
        now = time.monotonic()
        for key, f in list(self._followed.items()):
            if key in found:
                path = found[key][0]
                if path != f.path:
                    log.info("file_renamed", old=f.path, new=path)
                    f.path = path
                f.rotated_at = None
            elif f.rotated_at is None:
                f.rotated_at = now
                self.rotations += 1
                self.metrics.rotations.inc()
                log.info("file_rotated", path=f.path, offset=f.offset, line=f.line)
        # Rotated files first: what was written before the switch comes out first.
        for f in [f for f in self._followed.values() if f.rotated_at is not None]:
            if not await self._drain(f):
                return
            expired = f.rotated_at is not None and now - f.rotated_at >= self.rotate_grace_s
            if expired and not await self._close_rotated(f):
                return
        for key, (path, st, spec) in found.items():
            if key in self._followed:
                continue
            new = await self._start_following(path, st, spec, initial)
            if new is not None:
                self._followed[key] = new
        for f in [f for f in self._followed.values() if f.rotated_at is None]:
            if not await self._drain(f):
                return

    async def _start_following(
        self, path: str, st: os.stat_result, spec: FileSource, initial: bool
    ) -> _Followed | None:
        key = file_key(st.st_dev, st.st_ino)
        entry = self.registry.get(key)
        name = Path(path).name
        known = [g.name for g in self._followed.values()]
        known += [e.name or Path(e.path).name for e in self.registry.entries() if e.key != key]
        if entry is None and any(n == name or n.startswith(name + "@") for n in known):
            name = _generation_name(name, st.st_ino)  # a rotation: ids must not repeat
        f = self._open(path, name, spec.format, entry)
        if f is None:
            return None
        if entry is None and initial and not spec.from_beginning:
            size = os.fstat(f.fd).st_size
            f.line, f.offset = await asyncio.to_thread(_count_lines, path, size)
        if entry is None or (f.offset, f.line) != (entry.offset, entry.line):
            f.fp, f.fp_len = _fingerprint(f.fd, f.offset)
            self._commit_position(f)
            if entry is None and self.on_position is not None:
                self.on_position()
        log.info("file_followed", path=path, format=spec.format, offset=f.offset, line=f.line)
        return f

    def _commit_position(self, f: _Followed) -> None:
        """Record ``f``'s current position as processed (a start position, not data), now."""
        entry = FileOffset(
            f.path, f.dev, f.inode, f.offset - len(f.partial), f.line, f.fp, f.fp_len, f.name
        )
        with self._commit_lock:
            self._dirty[f.key] = entry
            self._write_dirty()

    async def _close_rotated(self, f: _Followed) -> bool:
        """Send a rotated file's unterminated last line and stop following it."""
        if f.partial:
            ok = await self._emit(f, [bytes(f.partial)], f.offset, raw=True)
            if not ok:
                return False
            f.partial.clear()
        os.close(f.fd)
        del self._followed[f.key]
        with self._lock:
            pending = self._pending.get(f.key)
            done = pending is None or not pending.items
            if pending is not None:
                pending.closed = True
                if done:
                    del self._pending[f.key]
        if done:
            with self._commit_lock:
                self._dirty[f.key] = None
                self._write_dirty()
        log.info("rotated_file_closed", path=f.path, line=f.line)
        return True

    # -- reading ---------------------------------------------------------------------

    def _check_identity(self, f: _Followed, size: int) -> bool:
        """False when ``f`` was truncated or rewritten since last read.

        Costs one ``pread`` of at most FINGERPRINT_BYTES: checked on every read, so a file
        truncated and refilled past (or to exactly) the old offset is caught too.
        """
        if size < f.offset:
            return False
        if f.fp_len:
            head = os.pread(f.fd, f.fp_len, 0)
            if len(head) < f.fp_len or hashlib.sha256(head).hexdigest() != f.fp:
                return False
        if f.fp_len < FINGERPRINT_BYTES and size > f.fp_len:
            f.fp, f.fp_len = _fingerprint(f.fd, size)
        return True

    def _restart_truncated(self, f: _Followed, size: int) -> None:
        self.truncations += 1
        self.metrics.truncations.inc()
        log.warning("file_truncated", path=f.path, size=size, offset=f.offset, line=f.line)
        f.offset, f.line = 0, 0
        f.name = _generation_name(f.name, f.inode)  # lines restart at 1: ids must not repeat
        f.partial.clear()
        f.fp, f.fp_len = _fingerprint(f.fd, size)
        with self._lock:
            pending = self._pending.setdefault(f.key, _Pending(name=f.name))
            pending.name = f.name
            pending.generation += 1
            pending.items.clear()
        self._commit_position(f)

    async def _drain(self, f: _Followed) -> bool:
        """Read ``f`` up to its current end; False if stopping interrupted the hand-off."""
        while True:
            size = os.fstat(f.fd).st_size
            if not self._check_identity(f, size):
                self._restart_truncated(f, size)
            if f.offset >= size:
                return True
            block = os.pread(f.fd, min(self.block_bytes, size - f.offset), f.offset)
            if not block:
                return True
            f.offset += len(block)
            f.partial += block
            cut = f.partial.rfind(b"\n") + 1
            if cut == 0:
                if len(f.partial) > self.max_line_bytes:
                    piece = bytes(f.partial[: self.max_line_bytes])
                    del f.partial[: self.max_line_bytes]
                    self.metrics.dropped.labels(self.name, "line_split").inc()
                    log.warning(
                        "long_line_split", path=f.path, line=f.line + 1, bytes=self.max_line_bytes
                    )
                    if not await self._emit(f, [piece], f.offset - len(f.partial), raw=True):
                        return False
                continue
            complete = bytes(f.partial[:cut])
            del f.partial[:cut]
            if not await self._send_block(f, complete):
                return False

    async def _send_block(self, f: _Followed, complete: bytes) -> bool:
        """Send newline-terminated ``complete`` in chunks of at most ``max_lines`` lines."""
        end = f.offset - len(f.partial)
        if complete.count(b"\n") <= self.max_lines:
            return await self._emit(f, decode_lines(complete), end)
        raws = complete.split(b"\n")[:-1]
        start = end - len(complete)
        for i in range(0, len(raws), self.max_lines):
            part = raws[i : i + self.max_lines]
            start += sum(map(len, part)) + len(part)
            if not await self._emit(f, decode_lines(b"\n".join(part) + b"\n"), start):
                return False
        return True

    async def _emit(
        self, f: _Followed, lines: list[Any], end_offset: int, *, raw: bool = False
    ) -> bool:
        """Queue one chunk ending at byte ``end_offset``; False when stopping first."""
        if raw:
            lines = decode_lines(b"\n".join(lines) + b"\n")
        first = f.line + 1
        with self._lock:
            pending = self._pending.setdefault(f.key, _Pending(name=f.name))
            seq = pending.next_seq
            pending.next_seq += 1
            pending.items.append(
                [seq, end_offset, f.line + len(lines), f.path, f.fp, f.fp_len, False]
            )
            token = AckToken(self, (f.key, pending.generation, seq))
        chunk = RawChunk(f.name, f.format, lines, first, token)
        if not await self.out.put(chunk, self._stopping):
            return False
        f.line += len(lines)
        self.metrics.lines.labels(self.name).inc(len(lines))
        self.metrics.chunks.labels(self.name).inc()
        await asyncio.sleep(0)  # let the other sources run between chunks
        return True

    # -- acks ------------------------------------------------------------------------

    def ack(self, token: Any) -> None:
        """Commit the file offset up to the longest acked prefix of that file's chunks."""
        key, generation, seq = token.value if isinstance(token, AckToken) else token
        with self._commit_lock:
            with self._lock:
                pending = self._pending.get(key)
                if pending is None or pending.generation != generation:
                    return  # the file was truncated since: those bytes are gone
                for item in pending.items:
                    if item[0] == seq:
                        item[6] = True
                        break
                last = None
                while pending.items and pending.items[0][6]:
                    last = pending.items.popleft()
                forget = pending.closed and not pending.items
                if forget:
                    del self._pending[key]
                name = pending.name
            if forget:
                self._dirty[key] = None
            elif last is not None:
                _, end_offset, end_line, path, fp, fp_len, _ = last
                dev, inode = (int(x) for x in key.split(":"))
                self._dirty[key] = FileOffset(
                    path, dev, inode, end_offset, end_line, fp, fp_len, name
                )
            else:
                return
            due = time.monotonic() - self._last_write >= self.commit_interval_s
            if due or not self._running:
                self._write_dirty()
