"""The offset registry of the file tail: where processing stopped, per file.

A file is identified by its device and inode plus a fingerprint (SHA-256 of its first
``fp_len`` bytes, up to :data:`FINGERPRINT_BYTES`), so a renamed file is still recognised
and a new file that reuses an old inode is not.

Two ways to make it durable:

- **its own file** (``OffsetRegistry(path)``): one JSON file written atomically on every
  change (temporary file, fsync, rename, fsync of the folder): after a crash it holds
  either the previous or the new content, never a torn one. For a tail used on its own.
- **owned by a checkpoint** (``OffsetRegistry()`` or :meth:`OffsetRegistry.from_bytes`):
  changes stay in memory and the owner saves :meth:`OffsetRegistry.dumps` together with
  the state that processed those lines, in one transaction (what the live service does,
  so offsets can never run ahead of the detector state that saw the lines).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from shopwatch.errors import ConfigError

__all__ = ["FINGERPRINT_BYTES", "FileOffset", "OffsetRegistry", "file_key"]

#: Bytes from the start of a file that make up its fingerprint.
FINGERPRINT_BYTES = 256
_VERSION = 1


def file_key(dev: int, inode: int) -> str:
    """The registry key of a file identity.

    >>> file_key(2049, 131)
    '2049:131'
    """
    return f"{dev}:{inode}"


@dataclass(slots=True)
class FileOffset:
    """What was processed of one file: bytes ``[0, offset)``, i.e. lines ``1..line``."""

    path: str
    dev: int
    inode: int
    offset: int
    line: int
    fp: str
    fp_len: int
    name: str = ""  # the base name its chunks carry (the name it had when first followed)

    @property
    def key(self) -> str:
        """Registry key (device:inode)."""
        return file_key(self.dev, self.inode)


class OffsetRegistry:
    """File offsets by identity, loaded at start; saved on each commit when given a path.

    Without a path nothing is written: the owner persists :meth:`dumps`. Thread-safe: the
    tail's loop and the pipeline's acks both call it.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, FileOffset] = {}
        if self.path is not None:
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return
            self._load(text, str(self.path))

    @classmethod
    def from_bytes(cls, blob: bytes, where: str = "the checkpoint") -> OffsetRegistry:
        """An in-memory registry holding what :meth:`dumps` gave (``where`` names it in errors)."""
        registry = cls()
        registry._load(blob.decode("utf-8", errors="replace"), where)
        return registry

    def dumps(self) -> bytes:
        """Every entry as the JSON document the registry file holds (for a checkpoint)."""
        with self._lock:
            return json.dumps(self._payload_locked(), indent=1).encode("utf-8")

    def _load(self, text: str, where: str) -> None:
        try:
            data = json.loads(text)
            if data.get("version") != _VERSION:
                raise ValueError(f"unknown version {data.get('version')!r}")
            for key, raw in data["files"].items():
                entry = FileOffset(**raw)
                if entry.key != key:
                    raise ValueError(f"entry {key} holds identity {entry.key}")
                self._entries[key] = entry
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(
                f"offset registry {where} is unreadable ({err}); move it away to "
                "re-read every followed file from its start"
            ) from err

    def get(self, key: str) -> FileOffset | None:
        """The entry for identity ``key``, if any (a copy)."""
        with self._lock:
            entry = self._entries.get(key)
            return None if entry is None else FileOffset(**asdict(entry))

    def entries(self) -> list[FileOffset]:
        """Copies of every entry."""
        with self._lock:
            return [FileOffset(**asdict(e)) for e in self._entries.values()]

    def commit(self, entry: FileOffset) -> None:
        """Record ``entry`` and save the registry."""
        self.apply({entry.key: entry})

    def remove(self, key: str) -> None:
        """Forget identity ``key`` (and save) if known."""
        self.apply({key: None})

    def apply(self, updates: dict[str, FileOffset | None]) -> None:
        """Record entries and forget keys mapped to None, then save once (if anything changed)."""
        with self._lock:
            changed = False
            for key, entry in updates.items():
                if entry is None:
                    changed |= self._entries.pop(key, None) is not None
                else:
                    self._entries[key] = FileOffset(**asdict(entry))
                    changed = True
            if changed and self.path is not None:
                self._save_locked(self.path)

    def _payload_locked(self) -> dict[str, object]:
        return {
            "version": _VERSION,
            "files": {k: asdict(v) for k, v in sorted(self._entries.items())},
        }

    def _save_locked(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = self._payload_locked()
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
