"""Alembic, run programmatically from the scripts shipped inside the package.

No ``alembic.ini`` is read: the script folder is found with :mod:`importlib.resources`, so
it works from a source checkout, an editable install and an installed wheel alike.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

__all__ = ["alembic_config", "current_revision", "head_revision", "migrations_dir"]


def _copy_tree(source: Traversable, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name == "__pycache__":
            continue
        if item.is_dir():
            _copy_tree(item, target / item.name)
        else:
            (target / item.name).write_bytes(item.read_bytes())


@cache
def migrations_dir() -> Path:
    """The folder holding ``env.py`` and ``versions/`` (extracted once if zipped)."""
    resource = files("shopwatch.store").joinpath("migrations")
    if isinstance(resource, Path):
        return resource
    # Installed as a zip (or another non-file loader): Alembic needs real files.
    tmp = Path(tempfile.mkdtemp(prefix="shopwatch-migrations-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    _copy_tree(resource, tmp / "migrations")
    return tmp / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config for the shipped scripts; ``connection`` is handed to ``env.py``."""
    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@cache
def head_revision() -> str:
    """The newest revision the shipped scripts know (``"0001"``...)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no migration scripts in {migrations_dir()}")
    return head


def current_revision(connection: Connection) -> str | None:
    """The revision the database is at; ``None`` when it was never migrated."""
    return MigrationContext.configure(connection).get_current_revision()
