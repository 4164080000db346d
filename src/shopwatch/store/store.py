"""The Store: alerts, incidents, decisions, feedback and checkpoints in SQLite or PostgreSQL.

One code path for both databases (SQLAlchemy Core, Alembic migrations). Every public
method opens its own connection and transaction, so one Store may be shared by threads:
the pipeline writes while the web server reads. SQLite runs in WAL mode with a busy
timeout and ``BEGIN IMMEDIATE`` for writes, so concurrent writers wait instead of failing
with "database is locked".
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import orjson
import sqlalchemy as sa
import structlog
from alembic import command
from alembic.util import CommandError
from sqlalchemy import event, exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

from shopwatch.contract import ENTITY_FIELDS, Alert, Decision, Incident
from shopwatch.errors import StoreError
from shopwatch.store import schema as t
from shopwatch.store.migrate import alembic_config, current_revision, head_revision

__all__ = ["Store", "mask_url"]

log = structlog.get_logger("shopwatch.store")

_EXAMPLES: Final = (
    "sqlite:///data/shopwatch.db or postgresql+psycopg://user:password@127.0.0.1:5432/shopwatch"
)
_WHERE: Final = "store.url in the config file, SHOPWATCH_STORE__URL or --url"
_CHUNK: Final = 500  # ids per IN (...) list
_SQLITE_BUSY_MS: Final = 30_000
_PG_LOCK_ID: Final = 0x73686F7077  # advisory lock serializing concurrent migrations
_NO_TABLE: Final = re.compile(r"no such table|relation .* does not exist|UndefinedTable", re.I)


def mask_url(url: str | URL) -> str:
    """``url`` with its password replaced by ``***`` (safe to log or print).

    >>> mask_url("postgresql+psycopg://shop:s3cret@db:5432/shopwatch")
    'postgresql+psycopg://shop:***@db:5432/shopwatch'
    >>> mask_url("no url at all, pw:hunter2@x")
    'no url at all, pw:***@x'
    """
    if isinstance(url, URL):
        return url.render_as_string(hide_password=True)
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparsable: mask anything that looks like user:password@
        return re.sub(r"(?<=:)[^:/@\s]*(?=@)", "***", url)


def _reason(err: BaseException) -> str:
    """The driver's own message, without SQLAlchemy's statement and parameter dump."""
    orig = getattr(err, "orig", None)
    text = str(orig if orig is not None else err).strip()
    text = text.split("\n[SQL:")[0].split("\n(Background")[0]
    text = " ".join(text.split())
    return text[:400] + ("…" if len(text) > 400 else "")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _entity_key(entity: dict[str, str]) -> str | None:
    """The first entity value in contract order (any other key after those)."""
    for name in ENTITY_FIELDS:
        value = entity.get(name)
        if value is not None:
            return value
    return next((v for v in entity.values() if v is not None), None)


def _chunks(items: Sequence[str], size: int = _CHUNK) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _utc_now() -> datetime:
    return datetime.now(UTC)


class Store:
    """Persistent records of shopwatch, in SQLite (default) or PostgreSQL.

    ``Store(url)`` only builds the engine (nothing connects yet); :meth:`open` also
    migrates to the newest schema. Errors from the database or its driver surface as
    :class:`~shopwatch.errors.StoreError` with what failed and what to do; passwords never
    appear in messages or logs. Datetimes go in and come out timezone-aware UTC.
    """

    def __init__(self, url: str) -> None:
        self._url = self._parse(url)
        self.url: str = mask_url(self._url)
        """The URL with its password masked (safe to show)."""
        self.dialect: str = self._url.get_backend_name()
        """``"sqlite"`` or ``"postgresql"``."""
        self._engine = self._create_engine()

    # -- lifecycle ---------------------------------------------------------------------

    @classmethod
    def open(cls, url: str) -> Store:
        """A Store whose database has been migrated to the newest schema."""
        store = cls(url)
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    def migrate(self) -> None:
        """Upgrade the database to the newest shipped revision (no-op when already there).

        Concurrent callers are serialized (an advisory lock on PostgreSQL, ``BEGIN
        IMMEDIATE`` on SQLite); the upgrade runs in one transaction on both.
        """
        with self._write("migrate the database") as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_ID)))
            before = current_revision(conn)
            if before != head_revision():
                try:
                    command.upgrade(alembic_config(conn), "head")
                except CommandError as err:
                    raise StoreError(
                        f"cannot migrate {self.url} from revision {before!r}: {err}; the "
                        "database was probably written by a newer shopwatch, upgrade it"
                    ) from err
        if before != head_revision():
            log.info(
                "store_migrated", url=self.url, from_revision=before, to_revision=head_revision()
            )

    def revision(self) -> str | None:
        """The schema revision of the database; ``None`` when it was never migrated."""
        with self._read("read the schema revision") as conn:
            return current_revision(conn)

    def close(self) -> None:
        """Close every pooled connection; the Store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    # -- alerts ------------------------------------------------------------------------

    def save_alerts(self, alerts: Sequence[Alert]) -> int:
        """Insert ``alerts`` in one transaction; returns how many were new.

        Idempotent by alert id: an id already stored (or repeated in ``alerts``) is left
        as it is. New rows go in with one ``executemany`` of ``INSERT .. ON CONFLICT DO
        NOTHING``, so batches of thousands are cheap. On SQLite the count is exact; on
        PostgreSQL an id that another writer inserts at the same instant counts as new
        here too (it is still stored once).
        """
        if not alerts:
            return 0
        now = _utc_now()
        rows: dict[str, dict[str, Any]] = {}
        for a in alerts:
            if a.id in rows:
                continue
            rows[a.id] = {
                "id": a.id,
                "timestamp": a.timestamp,
                "rule_id": a.rule_id,
                "rule_name": a.rule_name,
                "category": a.category,
                "severity": a.severity,
                "risk_score": int(a.risk_score),
                "entity": a.entity,
                "entity_key": _entity_key(a.entity),
                "event_ids": list(a.event_ids),
                "technique_id": a.technique_id,
                "message": a.message,
                "details": a.details,
                "stored_at": now,
            }
        insert_alerts = self._insert(t.alerts).on_conflict_do_nothing(index_elements=["id"])
        insert_entities = self._insert(t.alert_entities).on_conflict_do_nothing()
        with self._write("save alerts") as conn:
            stored = self._existing_alert_ids(conn, list(rows))
            new = [alert_id for alert_id in rows if alert_id not in stored]
            if new:
                # executemany without RETURNING: psycopg pipelines it, sqlite3 loops in C.
                conn.execute(insert_alerts, [rows[alert_id] for alert_id in new])
                entities = [
                    {"alert_id": alert_id, "field": field, "value": value}
                    for alert_id in new
                    for field, value in rows[alert_id]["entity"].items()
                    if value is not None
                ]
                if entities:
                    conn.execute(insert_entities, entities)
        log.debug("alerts_saved", given=len(alerts), new=len(new))
        return len(new)

    def alerts(
        self,
        *,
        limit: int = 100,
        since: datetime | None = None,
        until: datetime | None = None,
        category: str | None = None,
        severity: str | None = None,
        rule_id: str | None = None,
        entity_value: str | None = None,
    ) -> list[Alert]:
        """Stored alerts, newest first (by event time, then id).

        ``since`` is inclusive, ``until`` exclusive; ``entity_value`` matches any value of
        the alert's entity (an IP, a user name, a card fingerprint...).
        """
        query = sa.select(t.alerts).order_by(t.alerts.c.timestamp.desc(), t.alerts.c.id.desc())
        if since is not None:
            query = query.where(t.alerts.c.timestamp >= since)
        if until is not None:
            query = query.where(t.alerts.c.timestamp < until)
        if category is not None:
            query = query.where(t.alerts.c.category == category)
        if severity is not None:
            query = query.where(t.alerts.c.severity == severity)
        if rule_id is not None:
            query = query.where(t.alerts.c.rule_id == rule_id)
        if entity_value is not None:
            matching = sa.select(t.alert_entities.c.alert_id).where(
                t.alert_entities.c.value == entity_value
            )
            query = query.where(t.alerts.c.id.in_(matching))
        query = query.limit(max(0, limit))
        with self._read("read alerts") as conn:
            return [self._alert(row) for row in conn.execute(query).mappings()]

    def alert(self, alert_id: str) -> Alert | None:
        """One alert by id, or ``None``."""
        query = sa.select(t.alerts).where(t.alerts.c.id == alert_id)
        with self._read("read an alert") as conn:
            row = conn.execute(query).mappings().first()
        return None if row is None else self._alert(row)

    def alert_counts(self, *, since: datetime | None = None) -> dict[str, int]:
        """How many alerts per category (most first), optionally from ``since`` on."""
        n = sa.func.count().label("n")
        query = sa.select(t.alerts.c.category, n).group_by(t.alerts.c.category)
        if since is not None:
            query = query.where(t.alerts.c.timestamp >= since)
        with self._read("count alerts") as conn:
            rows = conn.execute(query).all()
        return {cat: int(count) for cat, count in sorted(rows, key=lambda r: (-r[1], r[0]))}

    def count_alerts(self) -> int:
        """How many alerts are stored."""
        with self._read("count alerts") as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(t.alerts)).scalar_one())

    # -- incidents ---------------------------------------------------------------------

    def save_incident(self, incident: Incident) -> None:
        """Insert or replace ``incident`` and its links to ``incident.alert_ids``.

        The links are replaced by the given ones (in their order) and each linked alert's
        ``incident_id`` points here. Every linked alert must be stored first.
        """
        values = {
            "id": incident.id,
            "opened_at": incident.opened_at,
            "updated_at": incident.updated_at,
            "title": incident.title,
            "severity": incident.severity,
            "risk_score": int(incident.risk_score),
            "status": incident.status,
            "entity": incident.entity,
        }
        upsert = self._insert(t.incidents).values(values)
        upsert = upsert.on_conflict_do_update(
            index_elements=["id"],
            set_={k: upsert.excluded[k] for k in values if k != "id"},
        )
        alert_ids = list(dict.fromkeys(incident.alert_ids))
        with self._write("save an incident") as conn:
            missing = set(alert_ids) - self._existing_alert_ids(conn, alert_ids)
            if missing:
                raise StoreError(
                    f"incident {incident.id!r} links alerts that are not stored: "
                    f"{', '.join(sorted(missing)[:5])}{' …' if len(missing) > 5 else ''}; "
                    "save the alerts first"
                )
            conn.execute(upsert)
            conn.execute(
                sa.delete(t.incident_alerts).where(t.incident_alerts.c.incident_id == incident.id)
            )
            if alert_ids:
                conn.execute(
                    sa.insert(t.incident_alerts),
                    [
                        {"incident_id": incident.id, "alert_id": alert_id, "position": i}
                        for i, alert_id in enumerate(alert_ids)
                    ],
                )
                for chunk in _chunks(alert_ids):
                    conn.execute(
                        sa.update(t.alerts)
                        .where(t.alerts.c.id.in_(chunk))
                        .values(incident_id=incident.id)
                    )

    def incidents(self, *, status: str | None = None, limit: int = 100) -> list[Incident]:
        """Incidents, most recently updated first, with their alert ids in link order."""
        query = sa.select(t.incidents).order_by(
            t.incidents.c.updated_at.desc(), t.incidents.c.id.desc()
        )
        if status is not None:
            query = query.where(t.incidents.c.status == status)
        query = query.limit(max(0, limit))
        with self._read("read incidents") as conn:
            rows = conn.execute(query).mappings().all()
            links: dict[str, list[str]] = {row["id"]: [] for row in rows}
            for chunk in _chunks(list(links)):
                link_query = (
                    sa.select(t.incident_alerts.c.incident_id, t.incident_alerts.c.alert_id)
                    .where(t.incident_alerts.c.incident_id.in_(chunk))
                    .order_by(t.incident_alerts.c.incident_id, t.incident_alerts.c.position)
                )
                for incident_id, alert_id in conn.execute(link_query):
                    links[incident_id].append(alert_id)
        return [
            Incident(
                id=row["id"],
                opened_at=row["opened_at"],
                updated_at=row["updated_at"],
                title=row["title"],
                severity=row["severity"],
                risk_score=row["risk_score"],
                status=row["status"],
                entity=dict(row["entity"] or {}),
                alert_ids=tuple(links[row["id"]]),
            )
            for row in rows
        ]

    # -- decisions ---------------------------------------------------------------------

    def save_decision(self, decision: Decision) -> None:
        """Insert or replace ``decision`` by id (a revocation already recorded is kept)."""
        values = {
            "id": decision.id,
            "created_at": decision.created_at,
            "action": decision.action,
            "entity_field": decision.entity_field,
            "entity_value": decision.entity_value,
            "reason": decision.reason,
            "expires_at": decision.expires_at,
            "origin": decision.origin,
            "alert_id": decision.alert_id,
        }
        stmt = self._insert(t.decisions).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=["id"], set_={k: stmt.excluded[k] for k in values if k != "id"}
        )
        with self._write("save a decision") as conn:
            conn.execute(stmt)

    def decisions(self, *, active_at: datetime | None = None) -> list[Decision]:
        """Decisions, newest first; with ``active_at`` only those in force at that instant.

        In force means created at or before ``active_at``, not yet expired
        (``expires_at`` after it, or none) and not revoked at or before it.
        """
        c = t.decisions.c
        query = sa.select(t.decisions).order_by(c.created_at.desc(), c.id)
        if active_at is not None:
            query = query.where(
                c.created_at <= active_at,
                sa.or_(c.expires_at.is_(None), c.expires_at > active_at),
                sa.or_(c.revoked_at.is_(None), c.revoked_at > active_at),
            )
        with self._read("read decisions") as conn:
            rows = conn.execute(query).mappings().all()
        return [
            Decision(
                id=row["id"],
                created_at=row["created_at"],
                action=row["action"],
                entity_field=row["entity_field"],
                entity_value=row["entity_value"],
                reason=row["reason"],
                expires_at=row["expires_at"],
                origin=row["origin"],
                alert_id=row["alert_id"],
            )
            for row in rows
        ]

    def revoke_decision(self, decision_id: str, at: datetime) -> bool:
        """Mark a decision revoked from ``at`` on; ``False`` if unknown or already revoked."""
        stmt = (
            sa.update(t.decisions)
            .where(t.decisions.c.id == decision_id, t.decisions.c.revoked_at.is_(None))
            .values(revoked_at=at)
        )
        with self._write("revoke a decision") as conn:
            return bool(conn.execute(stmt).rowcount)

    # -- feedback ----------------------------------------------------------------------

    def save_feedback(
        self,
        alert_id: str,
        verdict: str,
        analyst: str,
        note: str = "",
        at: datetime | None = None,
    ) -> int:
        """Record an analyst's verdict on a stored alert; returns the feedback id.

        ``verdict`` is one of ``true_positive``, ``false_positive``, ``benign``; ``at``
        defaults to now.
        """
        if verdict not in t.VERDICTS:
            raise StoreError(f"unknown verdict {verdict!r}; use one of {', '.join(t.VERDICTS)}")
        stmt = (
            sa.insert(t.feedback)
            .values(
                alert_id=alert_id,
                verdict=verdict,
                analyst=analyst,
                note=note,
                created_at=at if at is not None else _utc_now(),
            )
            .returning(t.feedback.c.id)
        )
        try:
            with self._write("save feedback") as conn:
                return int(conn.execute(stmt).scalar_one())
        except StoreError as err:
            if isinstance(err.__cause__, exc.IntegrityError):
                raise StoreError(
                    f"cannot save feedback: no alert with id {alert_id!r} is stored"
                ) from err.__cause__
            raise

    def feedback(self, alert_id: str | None = None) -> list[dict[str, Any]]:
        """Feedback in the order given (oldest first), for one alert or all.

        Each item has ``id``, ``alert_id``, ``verdict``, ``analyst``, ``note`` and
        ``created_at`` (aware UTC).
        """
        c = t.feedback.c
        query = sa.select(t.feedback).order_by(c.created_at, c.id)
        if alert_id is not None:
            query = query.where(c.alert_id == alert_id)
        with self._read("read feedback") as conn:
            return [dict(row) for row in conn.execute(query).mappings()]

    # -- checkpoints -------------------------------------------------------------------

    def save_checkpoint(self, name: str, data: bytes) -> None:
        """Store ``data`` under ``name``, replacing what was there."""
        self.save_checkpoints({name: data})

    def save_checkpoints(self, items: Mapping[str, bytes]) -> None:
        """Store every ``name: data`` of ``items`` in one transaction, replacing what was there.

        All or nothing: after a crash the database holds either every one of them or none,
        so checkpoints that must agree (detector state and the input offsets it has seen)
        are saved with one call.
        """
        if not items:
            return
        now = _utc_now()
        stmt = self._insert(t.checkpoints)
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
        )
        rows = [
            {"name": name, "data": bytes(data), "updated_at": now} for name, data in items.items()
        ]
        with self._write("save a checkpoint") as conn:
            conn.execute(stmt, rows)

    def load_checkpoint(self, name: str) -> bytes | None:
        """The bytes last saved under ``name``, or ``None``."""
        query = sa.select(t.checkpoints.c.data).where(t.checkpoints.c.name == name)
        with self._read("load a checkpoint") as conn:
            data = conn.execute(query).scalar_one_or_none()
        return None if data is None else bytes(data)

    # -- internals ---------------------------------------------------------------------

    @staticmethod
    def _parse(url: str) -> URL:
        try:
            parsed = make_url(url)
        except (exc.ArgumentError, ValueError, TypeError) as err:
            raise StoreError(
                f"invalid database URL {mask_url(str(url))!r}: {err}; expected e.g. {_EXAMPLES} "
                f"({_WHERE})"
            ) from err
        backend = parsed.get_backend_name()
        if backend in ("postgresql", "postgres"):
            if parsed.drivername in ("postgresql", "postgres"):
                parsed = parsed.set(drivername="postgresql+psycopg")  # the driver we ship
        elif backend != "sqlite":
            raise StoreError(
                f"unsupported database {backend!r} in {mask_url(parsed)!r}; shopwatch stores "
                f"into SQLite or PostgreSQL, e.g. {_EXAMPLES} ({_WHERE})"
            )
        return parsed

    def _create_engine(self) -> Engine:
        url = self._url
        kwargs: dict[str, Any] = {
            "json_serializer": _json_dumps,
            "json_deserializer": orjson.loads,
        }
        memory = False
        if self.dialect == "sqlite":
            database = url.database or ""
            memory = database in ("", ":memory:") or url.query.get("mode") == "memory"
            if memory:  # one shared connection, else each thread sees its own empty db
                kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
            else:
                try:
                    _create_private(Path(database).expanduser())
                except OSError as err:
                    raise StoreError(
                        f"cannot create the folder of the SQLite database {database!r}: {err}; "
                        f"choose a writable location ({_WHERE})"
                    ) from err
                kwargs["connect_args"] = {"timeout": _SQLITE_BUSY_MS / 1000}
        else:
            kwargs.update(
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5, "application_name": "shopwatch"},
            )
        try:
            engine = sa.create_engine(url, **kwargs)
        except (exc.ArgumentError, exc.NoSuchModuleError, ImportError) as err:
            raise StoreError(
                f"cannot use database URL {self.url!r}: {err}; expected e.g. {_EXAMPLES} ({_WHERE})"
            ) from err
        if self.dialect == "sqlite":
            _configure_sqlite(engine, wal=not memory)
        return engine

    def _insert(self, table: sa.Table) -> Any:
        """A dialect insert offering ``on_conflict_do_nothing`` / ``_do_update``."""
        if self.dialect == "sqlite":
            return sqlite.insert(table)
        return postgresql.insert(table)

    @staticmethod
    def _existing_alert_ids(conn: Connection, ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for chunk in _chunks(ids):
            found.update(
                conn.execute(sa.select(t.alerts.c.id).where(t.alerts.c.id.in_(chunk))).scalars()
            )
        return found

    @staticmethod
    def _alert(row: Any) -> Alert:
        return Alert(
            id=row["id"],
            timestamp=row["timestamp"],
            rule_id=row["rule_id"],
            rule_name=row["rule_name"],
            category=row["category"],
            severity=row["severity"],
            risk_score=row["risk_score"],
            entity=dict(row["entity"] or {}),
            event_ids=tuple(row["event_ids"] or ()),
            message=row["message"],
            technique_id=row["technique_id"],
            details=dict(row["details"] or {}),
        )

    @contextmanager
    def _read(self, doing: str) -> Iterator[Connection]:
        with self._errors(doing), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def _write(self, doing: str) -> Iterator[Connection]:
        with self._errors(doing), self._engine.connect() as conn:
            conn.execution_options(shopwatch_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Translate SQLAlchemy and driver errors into StoreError, once, at the boundary."""
        try:
            yield
        except StoreError:
            raise
        except exc.IntegrityError as err:
            raise StoreError(
                f"cannot {doing} in {self.url}: constraint violated: {_reason(err)}"
            ) from err
        except exc.DBAPIError as err:
            reason = _reason(err)
            if _NO_TABLE.search(reason):
                raise StoreError(
                    f"cannot {doing}: the database {self.url} has no shopwatch schema yet "
                    f"({reason}); run `shopwatch db upgrade` first"
                ) from err
            missing_db = re.search(r'database "([^"]+)" does not exist', reason)
            if missing_db:
                raise StoreError(
                    f"cannot {doing}: the database {missing_db.group(1)!r} does not exist on "
                    f"the server of {self.url}; create it (createdb {missing_db.group(1)}) or "
                    f"fix the URL ({_WHERE})"
                ) from err
            if (
                isinstance(err, exc.OperationalError | exc.InterfaceError)
                or err.connection_invalidated
            ):
                raise StoreError(
                    f"cannot {doing}: database {self.url} is unreachable or refused the "
                    f"operation: {reason}; check that the server is running and accepts "
                    f"connections, and the URL ({_WHERE})"
                ) from err
            raise StoreError(f"cannot {doing} in {self.url}: {reason}") from err
        except exc.SQLAlchemyError as err:
            raise StoreError(f"cannot {doing} in {self.url}: {_reason(err)}") from err


def _create_private(path: Path) -> None:
    """Create the SQLite file 0600 in a folder made 0700 (alerts and evidence are private).

    Only what is created here gets these modes; SQLite gives its -wal and -shm files the
    database file's own.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))


def _configure_sqlite(engine: Engine, *, wal: bool) -> None:
    """Pragmas on every new connection; explicit BEGIN (IMMEDIATE for writes)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        try:
            if wal:
                cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A write transaction takes the lock up front: a deferred one that upgrades from
        # read to write can fail at once with "database is locked" despite busy_timeout.
        immediate = conn.get_execution_options().get("shopwatch_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
