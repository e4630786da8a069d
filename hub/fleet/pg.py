"""The PostgreSQL a hub lives in: its schema, a libpq connection string for drivers outside
SQLAlchemy (LISTEN, procrastinate), and advisory locks keyed by schema and name.

The lock makes work exactly once across processes and machines: a rollout step judged by two
workers at the same moment is judged by one after the other, and the second sees the first's
decision. On SQLite (one process) the lock is a process-wide lock of the same name."""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections.abc import Iterator

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

_local_locks: dict[str, threading.Lock] = {}
_schemas: dict[str, str] = {}  # engine URL -> schema (the search_path is part of the URL)
_local_guard = threading.Lock()


def is_postgres(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "postgresql"


def schema_of(engine: Engine) -> str:
    """The schema the hub's tables are in (the first of the connection's search_path)."""
    key = engine.url.render_as_string(hide_password=True)
    cached = _schemas.get(key)
    if cached is None:
        with engine.connect() as conn:
            cached = _schemas[key] = str(conn.execute(text("SELECT current_schema()")).scalar_one())
    return cached


def conninfo(engine: Engine) -> str:
    """The engine's URL as libpq takes it (options such as search_path kept)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def lock_key(schema: str, name: str) -> int:
    """A signed 64-bit advisory lock key for ``name`` in ``schema``."""
    digest = hashlib.sha256(f"edge-hub:{schema}:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[None]:
    """Hold the lock ``name`` of this hub (every process on its database) while inside."""
    if not is_postgres(engine):
        with _local_guard:
            lock = _local_locks.setdefault(f"{engine.url}:{name}", threading.Lock())
        with lock:
            yield
        return
    key = lock_key(schema_of(engine), name)
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
            conn.commit()
