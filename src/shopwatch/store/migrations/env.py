"""Alembic environment for shopwatch's schema.

The store runs migrations programmatically and hands its open connection over in
``config.attributes["connection"]``; no ``alembic.ini`` is needed. Developers may still
point the ``alembic`` command at this folder with ``sqlalchemy.url`` set (for example to
autogenerate a new revision against ``shopwatch.store.schema.metadata``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from shopwatch.store.schema import metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    config = context.config
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _main() -> None:
    config = context.config
    if context.is_offline_mode():
        _run_offline()
        return
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url, or let shopwatch.store run the migrations")
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        _run(conn)
    engine.dispose()


# Alembic installs ``context.config`` while it runs this file; a plain import (doctest
# collection, a linter) does nothing.
if hasattr(context, "config"):
    _main()
