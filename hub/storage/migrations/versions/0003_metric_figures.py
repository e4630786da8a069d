"""Per-class figures of each health point: balanced accuracy, cost per part and recall per class
at that time (classifiers), so charts and cards do not judge on accuracy alone.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("gateway_metrics", sa.Column("figures", sa.JSON(), nullable=True))


def downgrade() -> None:
    op.drop_column("gateway_metrics", "figures")
