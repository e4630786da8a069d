"""Named admin tokens, 64-bit sequence numbers, ingest state of telemetry, audit chain reasons.

- tokens: a holder's name (unique), when made, when revoked; admin tokens made before names
  existed are named ``admin-<first 8 hex of their hash>`` so that they can be listed and revoked.
- telemetry.seq/items/id, agent_audit.seq: BIGINT on PostgreSQL (SQLite's INTEGER is 64-bit).
- telemetry.ingested: whether its samples and audit entries reached their tables. Records of an
  older hub are NULL (not known): a resend of one completes its ingest without duplicates.
- agent_audit.chain_reason, received: why an entry is not (yet) verified, and when it came.
- schema_version, the numbered steps' own table, goes: Alembic keeps the revision now.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    op.add_column("tokens", sa.Column("name", sa.String(length=64), nullable=True))
    op.add_column("tokens", sa.Column("created", sa.Float(), nullable=True))
    op.add_column("tokens", sa.Column("revoked", sa.Float(), nullable=True))
    op.execute("UPDATE tokens SET name = 'admin-' || substr(token_hash, 1, 8) WHERE role = 'admin'")
    op.create_index("tokens_name_unique", "tokens", ["name"], unique=True)
    op.add_column("telemetry", sa.Column("ingested", sa.Boolean(), nullable=True))
    op.add_column("agent_audit", sa.Column("chain_reason", sa.String(length=1000), nullable=True))
    op.add_column("agent_audit", sa.Column("received", sa.Float(), nullable=True))
    if postgres:
        for table, column in (("telemetry", "id"), ("telemetry", "seq"), ("telemetry", "items"),
                              ("agent_audit", "seq")):
            op.alter_column(table, column, type_=sa.BigInteger(), existing_nullable=False)
        op.execute("ALTER SEQUENCE IF EXISTS telemetry_id_seq AS BIGINT")
    op.execute("DROP TABLE IF EXISTS schema_version")


def downgrade() -> None:
    op.drop_index("tokens_name_unique", table_name="tokens")
    for table, column in (("tokens", "revoked"), ("tokens", "created"), ("tokens", "name"),
                          ("telemetry", "ingested"), ("agent_audit", "received"),
                          ("agent_audit", "chain_reason")):
        op.drop_column(table, column)
