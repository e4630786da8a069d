"""Several models per gateway: each gateway's latest report per model, and the model it last
named active (which picks the legacy top level of its desired state for a one-model agent).

- gateway_models: (gateway_id, model) -> that model's part of the latest status report.
- gateways.active_model: ``active.name`` of the gateway's latest report that named one.

A database at 0004 is filled from its gateway_status rows: each report becomes one entry named
by its active model, as the hub treats a report of a one-model agent.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# the per-model fields of a report (hub.storage.reports.MODEL_FIELDS at this revision)
MODEL_FIELDS = ("active", "shadow", "watch", "rejected", "alarms", "health", "metrics", "last_error")


def upgrade() -> None:
    with op.batch_alter_table("gateways") as batch:
        batch.add_column(sa.Column("active_model", sa.String(length=128), nullable=True))
    op.create_table("gateway_models",
                    sa.Column("gateway_id", sa.String(length=128), sa.ForeignKey("gateways.id"),
                              primary_key=True),
                    sa.Column("model", sa.String(length=128), primary_key=True),
                    sa.Column("report", sa.JSON(), nullable=False),
                    sa.Column("updated", sa.Float(), nullable=False),
                    sa.Column("metric_at", sa.Float(), nullable=True))
    status = sa.table("gateway_status", sa.column("gateway_id", sa.String()),
                      sa.column("report", sa.JSON()), sa.column("updated", sa.Float()))
    models = sa.table("gateway_models", sa.column("gateway_id", sa.String()),
                      sa.column("model", sa.String()), sa.column("report", sa.JSON()),
                      sa.column("updated", sa.Float()), sa.column("metric_at", sa.Float()))
    gateways = sa.table("gateways", sa.column("id", sa.String()), sa.column("active_model", sa.String()))
    bind = op.get_bind()
    rows: list[dict[str, Any]] = []
    for gateway_id, report, updated in bind.execute(sa.select(status.c.gateway_id, status.c.report,
                                                              status.c.updated)):
        report = report if isinstance(report, dict) else {}
        name = (report.get("active") or {}).get("name")
        if not isinstance(name, str) or not name or len(name) > 128:
            continue  # no model named: the next report of the gateway says which
        metric_at = report.get("_metric_at")
        rows.append({"gateway_id": gateway_id, "model": name, "updated": updated,
                     "report": {"name": name, **{k: report.get(k) for k in MODEL_FIELDS}},
                     "metric_at": float(metric_at) if isinstance(metric_at, (int, float)) else None})
        bind.execute(sa.update(gateways).where(gateways.c.id == gateway_id).values(active_model=name))
    if rows:
        op.bulk_insert(models, rows)


def downgrade() -> None:
    op.drop_table("gateway_models")
    with op.batch_alter_table("gateways") as batch:
        batch.drop_column("active_model")
