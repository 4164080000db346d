"""The SQLite database and the data folder are private to their owner when created."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from shopwatch.config import Settings
from shopwatch.store import Store


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(autouse=True)
def _open_umask() -> object:
    previous = os.umask(0o022)  # the usual umask: without care, 0644 files and 0755 folders
    yield
    os.umask(previous)


def test_sqlite_file_and_folder_are_created_private(tmp_path: Path) -> None:
    db = tmp_path / "data" / "shopwatch.db"
    with Store.open(f"sqlite:///{db}") as store:  # creates the schema
        store.alerts()
    assert mode(db.parent) == 0o700
    assert mode(db) == 0o600
    for side in db.parent.glob("shopwatch.db-*"):  # WAL and shared memory, if still there
        assert mode(side) == 0o600, side


def test_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "shopwatch.db"
    db.touch(mode=0o640)
    with Store(f"sqlite:///{db}"):
        pass
    assert mode(db) == 0o640  # chosen by its owner; not ours to change


def test_service_data_dir_is_created_private(tmp_path: Path) -> None:
    from shopwatch.pipeline.service import Service

    settings = Settings(data_dir=tmp_path / "data")
    settings.web.enabled = False
    service = Service(settings, with_sources=False, with_web=False)
    try:
        assert mode(settings.data_dir) == 0o700
        assert mode(settings.data_dir / "shopwatch.db") == 0o600
    finally:
        service.store.close()
