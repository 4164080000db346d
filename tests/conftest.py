"""Shared fixtures: the public datasets and the real PostgreSQL server."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

# CI runs the property tests derandomized (the same examples every run, so a red build is
# reproducible); locally they explore new examples each time.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.register_profile("dev", deadline=None)
hypothesis_settings.load_profile("ci" if os.environ.get("CI") else "dev")

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
PG_ADMIN_URL = os.environ.get("SHOPWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(scope="session")
def datasets() -> Path:
    """The shared public datasets (SHOPWATCH_DATASETS, else ../shared/datasets beside the repo)."""
    env = os.environ.get("SHOPWATCH_DATASETS")
    path = Path(env) if env else ROOT.parent / "shared" / "datasets"
    if not path.is_dir():
        pytest.skip(f"public datasets not found at {path}; set SHOPWATCH_DATASETS")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Small real samples kept in the repo."""
    return FIXTURES


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A psycopg URL of the admin database; skips with the reason when unreachable."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("select 1")
    except Exception as err:  # any failure to connect means: skip, saying why
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {err}")
    return PG_ADMIN_URL


@pytest.fixture()
def pg_url(pg_server_url: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test (SQLAlchemy URL), dropped afterwards."""
    import psycopg

    name = f"shopwatch_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = pg_server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
