"""Opening the hub's database and bringing its schema to the newest Alembic revision.

``migrate`` is what every hub process and command runs first: a new database is created by the
migrations, one made by an older hub is upgraded in place (a pre-Alembic one is finished by
hub.storage.legacy first), and an up-to-date one is left alone. On PostgreSQL an advisory lock
makes hub processes starting together migrate one after the other."""

from __future__ import annotations

import logging
import weakref
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Connection, Engine

from hub.storage import legacy

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 0x65646765  # "edge": the advisory lock key of hub migrations


def open_db(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


def alembic_config(conn: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


SQLITE_BUSY_MS = 30_000  # a writer waits this long for another one, not SQLite's 5 s
_waiting_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def sqlite_waits(engine: Engine) -> None:
    """On SQLite: write-ahead logging (persistent in the file: readers no longer block the
    writer) and a busy timeout on every connection, so that gateways uploading at once queue
    for the write lock instead of failing with "database is locked" (the hub bench's 8
    gateways did after 5 s). Nothing on other databases; once per engine."""
    if engine.dialect.name != "sqlite" or engine in _waiting_engines:
        return
    _waiting_engines.add(engine)

    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_MS}")
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.pool.dispose()  # connections opened before get it too
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")


def migrate(engine: Engine) -> None:
    """Create or upgrade the schema to the newest revision."""
    sqlite_waits(engine)
    with engine.connect() as conn:
        postgres = conn.dialect.name == "postgresql"
        if postgres:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _LOCK_ID})
        try:
            _upgrade(conn)
        finally:
            if postgres:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _LOCK_ID})
                conn.commit()


def _upgrade(conn: Connection) -> None:
    cfg = alembic_config(conn)
    if MigrationContext.configure(conn).get_current_revision() is None:
        step = legacy.numbered_step(conn)
        conn.commit()
        if step is not None:  # made by a hub of before Alembic: finish its steps, then take over
            with conn.begin():
                legacy.finish_steps(conn, step)
            command.stamp(cfg, "0001")
            conn.commit()
            log.info("hub database at schema step %d: now under Alembic, revision 0001", step)
    before = MigrationContext.configure(conn).get_current_revision()
    command.upgrade(cfg, "head")
    conn.commit()
    after = MigrationContext.configure(conn).get_current_revision()
    if before != after:
        log.info("hub database migrated from revision %s to %s", before or "(new)", after)
