"""The schema as the numbered steps left it (step 2, the last one before Alembic).

A new database is created by running this revision; a database made by an older hub (it has
``schema_version``) is brought to step 2 by hub.storage.legacy and stamped at this revision.
The tables are frozen in hub/storage/migrations/baseline.py.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""

from __future__ import annotations

from alembic import op

from hub.storage.migrations.baseline import METADATA

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    METADATA.create_all(op.get_bind())


def downgrade() -> None:
    METADATA.drop_all(op.get_bind())
