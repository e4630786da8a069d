"""Alembic's entry point for the hub's schema. The hub runs it in-process (hub.storage.engine
.migrate) on a connection it opened; there is no alembic.ini to keep beside the database."""

from __future__ import annotations

from alembic import context

from hub.storage.shared import declared, declared_object
from hub.storage.tables import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True,
                  include_name=declared, include_object=declared_object,
                  render_as_batch=True)  # SQLite changes columns by copying the table
with context.begin_transaction():
    context.run_migrations()
