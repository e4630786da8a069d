"""Databases made before Alembic: their numbered schema steps (recorded in ``schema_version``)
are finished here, so that Alembic can take over from the baseline revision, 0001.
Nothing new is ever added to this file: schema changes are Alembic revisions."""

from __future__ import annotations

import logging

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)

LAST_STEP = 2

# the statements of each numbered step, as the hub ran them before Alembic
_STEPS: dict[int, list[str]] = {
    2: ["ALTER TABLE gateways ADD COLUMN retired FLOAT",
        "ALTER TABLE model_versions ADD COLUMN archive_sha256 VARCHAR(64)",
        "ALTER TABLE model_versions ADD COLUMN size INTEGER",
        "ALTER TABLE deployments ADD COLUMN status VARCHAR(16) DEFAULT 'active' NOT NULL",
        "ALTER TABLE deployments ADD COLUMN canary JSON",
        "ALTER TABLE deployments ADD COLUMN watch_s FLOAT DEFAULT 0 NOT NULL",
        "ALTER TABLE deployments ADD COLUMN min_labels INTEGER DEFAULT 0 NOT NULL",
        "ALTER TABLE deployments ADD COLUMN margin FLOAT DEFAULT 0 NOT NULL",
        "ALTER TABLE deployments ADD COLUMN decided FLOAT",
        "ALTER TABLE deployments ADD COLUMN reason VARCHAR(1000)"],
}


def numbered_step(conn: Connection) -> int | None:
    """The step of a pre-Alembic database, or None when it has no ``schema_version``."""
    if not inspect(conn).has_table("schema_version"):
        return None
    return int(conn.execute(text("SELECT MAX(version) FROM schema_version")).scalar() or 0)


def finish_steps(conn: Connection, step: int) -> None:
    """Run the steps after ``step`` and create the tables the baseline has that the database
    lacks (tables were added to step 2 without a step of their own)."""
    from hub.storage.migrations.baseline import create_missing_tables

    for n in range(step + 1, LAST_STEP + 1):
        log.info("upgrading the hub database from step %d to step %d", n - 1, n)
        for statement in _STEPS[n]:
            conn.execute(text(statement))
    create_missing_tables(conn)
