"""The Store's edges: bad URLs, unreachable servers, masked passwords, threads."""

from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from shopwatch.contract import Decision
from shopwatch.errors import StoreError
from shopwatch.store import Store, mask_url

from .conftest import T0, make_alert


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_unreachable_server_is_a_clear_store_error() -> None:
    url = f"postgresql+psycopg://shop:s3cret@127.0.0.1:{_closed_port()}/shopwatch"
    store = Store(url)  # no connection yet
    assert store.url.endswith(f"shop:***@127.0.0.1:{url.rsplit(':', 1)[1]}")
    with pytest.raises(StoreError) as caught:
        store.count_alerts()
    message = str(caught.value)
    assert "unreachable" in message and "check that the server is running" in message
    assert "127.0.0.1" in message and "s3cret" not in message and "shop:***@" in message
    with pytest.raises(StoreError, match="cannot migrate the database"):
        Store.open(url)
    store.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a database url", "invalid database URL"),
        ("", "invalid database URL"),
        ("mysql://root:hunter2@127.0.0.1/shop", "unsupported database 'mysql'"),
        ("postgresql+psycopg2://u:hunter2@127.0.0.1/shop", "cannot use database URL"),
        ("nosuchdb://127.0.0.1/x", "unsupported database 'nosuchdb'"),
    ],
)
def test_bad_urls_are_store_errors(url: str, expected: str) -> None:
    with pytest.raises(StoreError, match=expected) as caught:
        Store(url)
    assert "hunter2" not in str(caught.value)
    assert "postgresql+psycopg://" in str(caught.value)  # says what a good URL looks like


def test_sqlite_in_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder"):
        Store(f"sqlite:///{blocker / 'sub' / 'shopwatch.db'}")


def test_plain_postgresql_urls_use_the_shipped_driver(pg_url: str) -> None:
    plain = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with Store.open(plain) as store:
        assert store.dialect == "postgresql"
        assert store.revision() == "0001"


def test_unmigrated_database_says_to_upgrade(store_url: str) -> None:
    with Store(store_url) as store, pytest.raises(StoreError, match="shopwatch db upgrade"):
        store.save_alerts([make_alert(1)])


def test_passwords_never_reach_logs_or_messages(pg_url: str) -> None:
    # The test server trusts local connections, so any password is accepted and unused.
    url = pg_url.replace("postgresql+psycopg://postgres@", "postgresql+psycopg://postgres:s3cret@")
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as logs, Store.open(url) as store:
            assert "s3cret" not in repr(store) and "s3cret" not in store.url
            store.save_alerts([make_alert(1)])
    finally:
        structlog.configure(**saved)
    assert any(entry["event"] == "store_migrated" for entry in logs)
    assert "s3cret" not in repr(logs)
    assert mask_url(url).count("***") == 1


def test_memory_database_is_shared_across_threads() -> None:
    with Store.open("sqlite://") as store:
        thread = threading.Thread(target=store.save_alerts, args=([make_alert(1)],))
        thread.start()
        thread.join()
        assert store.count_alerts() == 1


def test_concurrent_writers_and_readers(store_url: str) -> None:
    """A pipeline thread writes alerts while web threads read and another Store writes."""
    store = Store.open(store_url)
    other = Store(store_url)  # a second engine on the same database, as another process would
    errors: list[BaseException] = []
    batches, per_batch = 30, 100
    writing = threading.Event()
    writing.set()
    reads = [0]

    def guard(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as err:  # collected and asserted below
                errors.append(err)

        return run

    @guard
    def pipeline() -> None:
        try:
            for b in range(batches):
                batch = [make_alert(b * per_batch + i, events=100) for i in range(per_batch)]
                assert store.save_alerts(batch) == per_batch
                store.save_checkpoint("engine", f"batch={b}".encode())
        finally:
            writing.clear()

    @guard
    def responder() -> None:
        n = 0
        while writing.is_set() or n < 50:
            other.save_decision(
                Decision(
                    id=f"dec-{n % 50}",
                    created_at=T0 + timedelta(seconds=n),
                    action="block_ip",
                    entity_field="source.ip",
                    entity_value=f"203.0.113.{n % 50}",
                    reason="test",
                )
            )
            n += 1

    @guard
    def web() -> None:
        while writing.is_set():
            newest = store.alerts(limit=20)
            assert newest == sorted(newest, key=lambda a: (a.timestamp, a.id), reverse=True)
            store.alert_counts()
            store.decisions(active_at=T0)
            store.load_checkpoint("engine")
            reads[0] += 1

    threads = [threading.Thread(target=f) for f in (pipeline, responder, web, web)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    other.close()
    try:
        assert not errors, errors
        assert store.count_alerts() == batches * per_batch
        assert store.load_checkpoint("engine") == f"batch={batches - 1}".encode()
        assert len(store.decisions()) == 50
        assert reads[0] > 0
    finally:
        store.close()


def test_missing_postgresql_database_says_to_create_it(pg_server_url: str) -> None:
    base = pg_server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
    with pytest.raises(StoreError, match=r"'shopwatch_absent_db' does not exist.*createdb"):
        Store.open(f"{base}/shopwatch_absent_db")
