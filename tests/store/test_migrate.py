"""Migrations: from empty to head on both databases, models equal to the scripts, and the
scripts found from an installed (non-editable, even zipped) package."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from shopwatch.errors import StoreError
from shopwatch.store import Store, head_revision
from shopwatch.store.schema import metadata

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "alembic_version",
    "alerts",
    "alert_entities",
    "incidents",
    "incident_alerts",
    "decisions",
    "feedback",
    "checkpoints",
}


def test_migrates_an_empty_database_to_head(store_url: str) -> None:
    store = Store(store_url)
    try:
        assert store.revision() is None
        store.migrate()
        assert head_revision() == "0001"
        assert store.revision() == "0001"
        store.migrate()  # already at head: nothing to do, no error
        assert store.revision() == "0001"
        tables = set(sa.inspect(store._engine).get_table_names())
        assert tables == TABLES
    finally:
        store.close()
    with Store.open(store_url) as reopened:  # open() on a migrated database
        assert reopened.revision() == head_revision()
        assert reopened.count_alerts() == 0


def _diff(store: Store, target: sa.MetaData) -> list[object]:
    with store._engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, target))


def test_models_agree_with_the_migrated_schema(store: Store) -> None:
    assert _diff(store, metadata) == []
    # The comparison does see a difference when there is one.
    changed = sa.MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(changed)
    changed.tables["alerts"].append_column(sa.Column("extra", sa.Integer, nullable=True))
    diff = _diff(store, changed)
    assert [d[0] for d in diff if isinstance(d, tuple)] == ["add_column"]


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'dir' / 'shopwatch.db'}"
    with Store.open(url) as store, store._engine.connect() as conn:
        pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
        assert pragma("journal_mode") == "wal"
        assert pragma("synchronous") == 1  # NORMAL
        assert pragma("foreign_keys") == 1
        assert pragma("busy_timeout") >= 5000
    assert (tmp_path / "new" / "dir" / "shopwatch.db").is_file()


def _build_package(tmp_path: Path) -> Path:
    """The package files exactly as a wheel ships them (setuptools build_py, package data)."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(ROOT / "pyproject.toml", project)
    if (ROOT / "README.md").exists():
        shutil.copy(ROOT / "README.md", project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    lib = tmp_path / "lib"
    subprocess.run(
        [
            sys.executable,
            "-c",
            "import setuptools; setuptools.setup()",
            "-q",
            "build_py",
            "-d",
            str(lib),
        ],
        cwd=project,
        check=True,
        capture_output=True,
    )
    return lib


_PROBE = """
import sys
sys.path.insert(0, sys.argv[1])
import shopwatch.store
from shopwatch.store import Store
from shopwatch.store.migrate import migrations_dir
assert shopwatch.store.__file__.startswith(sys.argv[1]), shopwatch.store.__file__
with Store.open(sys.argv[2]) as store:
    print(store.revision(), migrations_dir())
"""


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_migrations_are_found_from_an_installed_package(tmp_path: Path, layout: str) -> None:
    lib = _build_package(tmp_path)
    assert (lib / "shopwatch/store/migrations/versions/0001_initial.py").is_file()
    assert (lib / "shopwatch/store/migrations/env.py").is_file()
    assert (lib / "shopwatch/store/migrations/script.py.mako").is_file()
    where = str(lib)
    if layout == "zip":
        where = str(tmp_path / "shopwatch.zip")
        with zipfile.ZipFile(where, "w") as zf:
            for path in lib.rglob("*"):
                zf.write(path, path.relative_to(lib))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    db = tmp_path / "installed.db"
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, where, f"sqlite:///{db}"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    revision, folder = done.stdout.split()[-2:]
    assert revision == "0001"
    if layout == "folder":
        assert folder.startswith(str(lib))
    else:
        assert not folder.startswith(str(ROOT))


def test_unknown_revision_is_a_store_error(store: Store) -> None:
    with store._engine.begin() as conn:
        conn.exec_driver_sql("UPDATE alembic_version SET version_num = '9999'")
    with pytest.raises(StoreError, match="newer shopwatch"):
        store.migrate()
