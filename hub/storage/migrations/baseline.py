"""The hub's schema as the numbered steps left it (step 2, the last before Alembic), frozen:
revision 0001 creates it, and hub.storage.legacy completes older databases with it. Never edit
this file; change the schema with a new revision."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

METADATA = sa.MetaData()

sa.Table(
    "gateways", METADATA,
    sa.Column("id", sa.String(length=128), nullable=False),
    sa.Column("group", sa.String(length=128), nullable=True),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("last_seen", sa.Float(), nullable=True),
    sa.Column("retired", sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Table(
    "agent_audit", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("entry", sa.JSON(), nullable=False),
    sa.Column("chain_ok", sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("gateway_id", "seq", name="agent_audit_once"))
sa.Table(
    "config_overlays", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("target", sa.String(length=128), nullable=False),
    sa.Column("overlay", sa.JSON(), nullable=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("author", sa.String(length=128), nullable=False),
    sa.Column("comment", sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Table(
    "datasets", METADATA,
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("rows", sa.Integer(), nullable=False),
    sa.Column("first_ts", sa.Float(), nullable=False),
    sa.Column("last_ts", sa.Float(), nullable=False),
    sa.Column("gateways", sa.JSON(), nullable=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("sha256"))
sa.Table(
    "deployments", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("target", sa.String(length=128), nullable=False),
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("version", sa.String(length=64), nullable=False),
    sa.Column("strategy", sa.String(length=16), nullable=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("status", sa.String(length=16), nullable=False),
    sa.Column("canary", sa.JSON(), nullable=False),
    sa.Column("watch_s", sa.Float(), nullable=False),
    sa.Column("min_labels", sa.Integer(), nullable=False),
    sa.Column("margin", sa.Float(), nullable=False),
    sa.Column("decided", sa.Float(), nullable=True),
    sa.Column("reason", sa.String(length=1000), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Table(
    "gateway_metrics", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=False),
    sa.Column("at", sa.Float(), nullable=False),
    sa.Column("model", sa.String(length=128), nullable=True),
    sa.Column("version", sa.String(length=64), nullable=True),
    sa.Column("accuracy", sa.Float(), nullable=True),
    sa.Column("drift_score", sa.Float(), nullable=True),
    sa.Column("health", sa.String(length=16), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Index("ix_gateway_metrics_at", METADATA.tables["gateway_metrics"].c["at"])
sa.Index("ix_gateway_metrics_gateway_id", METADATA.tables["gateway_metrics"].c["gateway_id"])
sa.Table(
    "history", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("at", sa.Float(), nullable=False),
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("version", sa.String(length=64), nullable=False),
    sa.Column("event", sa.String(length=32), nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=True),
    sa.Column("detail", sa.String(length=2000), nullable=True),
    sa.Column("actor", sa.String(length=128), nullable=False),
    sa.Column("prev", sa.String(length=64), nullable=True),
    sa.Column("hash", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Table(
    "model_policies", METADATA,
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("policy", sa.JSON(), nullable=False),
    sa.Column("state", sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint("model"))
sa.Table(
    "model_versions", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("name", sa.String(length=128), nullable=False),
    sa.Column("version", sa.String(length=64), nullable=False),
    sa.Column("sha256", sa.String(length=64), nullable=False),
    sa.Column("manifest", sa.JSON(), nullable=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("archive_sha256", sa.String(length=64), nullable=True),
    sa.Column("size", sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("name", "version"),
    sa.UniqueConstraint("sha256"))
sa.Table(
    "retrain_runs", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("at", sa.Float(), nullable=False),
    sa.Column("status", sa.String(length=32), nullable=False),
    sa.Column("trigger", sa.String(length=1000), nullable=False),
    sa.Column("detail", sa.JSON(), nullable=False),
    sa.Column("version", sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint("id"))
sa.Index("ix_retrain_runs_model", METADATA.tables["retrain_runs"].c["model"])
sa.Table(
    "training_samples", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("model", sa.String(length=128), nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=False),
    sa.Column("sample_id", sa.String(length=128), nullable=False),
    sa.Column("ts", sa.Float(), nullable=False),
    sa.Column("inputs", sa.JSON(), nullable=False),
    sa.Column("x", sa.JSON(), nullable=False),
    sa.Column("label", sa.String(length=128), nullable=False),
    sa.Column("predicted", sa.String(length=128), nullable=True),
    sa.Column("version", sa.String(length=64), nullable=False),
    sa.Column("hard", sa.Boolean(), nullable=False),
    sa.Column("received", sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint("id"))
sa.Index("ix_training_samples_model", METADATA.tables["training_samples"].c["model"])
sa.Index("ix_training_samples_ts", METADATA.tables["training_samples"].c["ts"])
sa.Table(
    "gateway_status", METADATA,
    sa.Column("gateway_id", sa.String(length=128), nullable=False),
    sa.Column("report", sa.JSON(), nullable=False),
    sa.Column("updated", sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
    sa.PrimaryKeyConstraint("gateway_id"))
sa.Table(
    "telemetry", METADATA,
    sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=False),
    sa.Column("seq", sa.Integer(), nullable=False),
    sa.Column("kind", sa.String(length=32), nullable=False),
    sa.Column("items", sa.Integer(), nullable=False),
    sa.Column("payload", sa.LargeBinary(), nullable=False),
    sa.Column("created", sa.Float(), nullable=False),
    sa.Column("received", sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
    sa.PrimaryKeyConstraint("id"),
    sa.UniqueConstraint("gateway_id", "seq", name="telemetry_once"))
sa.Table(
    "tokens", METADATA,
    sa.Column("token_hash", sa.String(length=64), nullable=False),
    sa.Column("role", sa.String(length=16), nullable=False),
    sa.Column("gateway_id", sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(["gateway_id"], ["gateways.id"]),
    sa.PrimaryKeyConstraint("token_hash"))




def create_missing_tables(conn: Connection) -> None:
    METADATA.create_all(conn, checkfirst=True)
