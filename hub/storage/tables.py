"""The hub's tables (SQLAlchemy ORM): a SQLite file for one plant, PostgreSQL for a fleet.

The schema is made and changed by the Alembic migrations in ``hub/storage/migrations``: a change
here needs a new revision there (``tests/integration/test_migrations.py`` fails when the two
differ). Telemetry is idempotent by a unique (gateway, seq) key, so an at-least-once upload is
stored exactly once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# 64-bit signed where stored (a gateway's sequence numbers may pass 2^31); SQLite's INTEGER is
# 64-bit already and must stay INTEGER for its rowid behaviour
Int64 = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    group: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    retired: Mapped[float | None] = mapped_column(Float, nullable=True)
    # revision 0005: the model named active in its last report (the top level of a report: a
    # one-model agent's only model); picks the legacy top level of its desired state
    active_model: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Token(Base):
    """A bearer token, stored as its sha256. Admin tokens have a holder's name (unique, shown in
    the audit trail) and are revoked by setting ``revoked``, never deleted: the trail keeps
    naming who held them."""
    __tablename__ = "tokens"
    __table_args__ = (Index("tokens_name_unique", "name", unique=True),)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | gateway
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id"), nullable=True)
    name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked: Mapped[float | None] = mapped_column(Float, nullable=True)


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    manifest: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)
    # the archive as served: the agent checks size and hash before it even unpacks (step 2)
    archive_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(128))  # a gateway id or "group:NAME"
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16))
    created: Mapped[float] = mapped_column(Float)
    # step 2: a deployment is a rollout with a state the hub moves forward
    status: Mapped[str] = mapped_column(String(16), default="active")
    canary: Mapped[list[str]] = mapped_column(JSON, default=list)  # gateways chosen as canaries
    watch_s: Mapped[float] = mapped_column(Float, default=0.0)
    min_labels: Mapped[int] = mapped_column(Integer, default=0)
    margin: Mapped[float] = mapped_column(Float, default=0.0)
    decided: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class GatewayStatus(Base):
    """The latest status report of each gateway (active and shadow versions, alarms, backlog)."""
    __tablename__ = "gateway_status"
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated: Mapped[float] = mapped_column(Float)


class GatewayModel(Base):
    """Revision 0005: the latest report of each model on each gateway (a status report's
    ``models`` entries; an old agent's report is one entry named by its active model): what
    rollouts, retrain triggers, the fleet table and cards read per (gateway, model)."""
    __tablename__ = "gateway_models"
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated: Mapped[float] = mapped_column(Float)
    metric_at: Mapped[float | None] = mapped_column(Float, nullable=True)  # its last chart point


class ConfigOverlay(Base):
    """Agent config settings held by the hub for a gateway or a group (the newest per target)."""
    __tablename__ = "config_overlays"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(128))  # a gateway id or "group:NAME"
    overlay: Mapped[dict[str, Any]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)
    author: Mapped[str] = mapped_column(String(128))
    comment: Mapped[str | None] = mapped_column(String(1000), nullable=True)


class TrainingSample(Base):
    """A labelled sample a gateway uploaded: the inputs its model saw and the label that came."""
    __tablename__ = "training_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    sample_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[float] = mapped_column(Float, index=True)
    inputs: Mapped[list[str]] = mapped_column(JSON)
    x: Mapped[list[float]] = mapped_column(JSON)
    label: Mapped[str] = mapped_column(String(128))
    predicted: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str] = mapped_column(String(64))
    hard: Mapped[bool] = mapped_column(default=False)
    received: Mapped[float] = mapped_column(Float)


class Dataset(Base):
    """An immutable snapshot of training samples, by the sha256 of its files."""
    __tablename__ = "datasets"
    sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    model: Mapped[str] = mapped_column(String(128))
    rows: Mapped[int] = mapped_column(Integer)
    first_ts: Mapped[float] = mapped_column(Float)
    last_ts: Mapped[float] = mapped_column(Float)
    gateways: Mapped[list[str]] = mapped_column(JSON)
    created: Mapped[float] = mapped_column(Float)


class AgentAudit(Base):
    """Gateways' audit entries as received; the hub checks each gateway's chain as it grows."""
    __tablename__ = "agent_audit"
    __table_args__ = (UniqueConstraint("gateway_id", "seq", name="agent_audit_once"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(128))
    seq: Mapped[int] = mapped_column(Int64)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    chain_ok: Mapped[bool] = mapped_column(default=True)
    # why the chain is broken at this entry, or why it is not verified yet (a gap that a resend
    # may still fill); None when it follows its predecessor
    chain_reason: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    received: Mapped[float | None] = mapped_column(Float, nullable=True)


class ModelPolicy(Base):
    """How the hub keeps a model working: retrain triggers, trainer, rollout, approval."""
    __tablename__ = "model_policies"
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # trigger timers, last retrain


class RetrainRun(Base):
    """Every retrain decision and what came of it: why it ran (or did not), the result."""
    __tablename__ = "retrain_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[float] = mapped_column(Float)
    # skipped | running | failed | not_better | awaiting_approval | deployed
    status: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[str] = mapped_column(String(1000))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)


class GatewayMetric(Base):
    """A point of each gateway's model health over time, from its status reports (for charts)."""
    __tablename__ = "gateway_metrics"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(String(128), index=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    model: Mapped[str | None] = mapped_column(String(128), nullable=True)
    version: Mapped[str | None] = mapped_column(String(64), nullable=True)
    accuracy: Mapped[float | None] = mapped_column(Float, nullable=True)
    drift_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    health: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # revision 0003: balanced accuracy, cost per part and recall per class then (classifiers)
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class HistoryEntry(Base):
    """What happened to model versions: published, deployed, activated, promoted, rolled back."""
    __tablename__ = "history"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float)
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    event: Mapped[str] = mapped_column(String(32))
    gateway_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    actor: Mapped[str] = mapped_column(String(128), default="hub")
    # the hash chain, sealed in id order by one writer (see hub/audit.py)
    prev: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Telemetry(Base):
    __tablename__ = "telemetry"
    __table_args__ = (UniqueConstraint("gateway_id", "seq", name="telemetry_once"),)
    id: Mapped[int] = mapped_column(Int64, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    seq: Mapped[int] = mapped_column(Int64)
    kind: Mapped[str] = mapped_column(String(32))
    items: Mapped[int] = mapped_column(Int64)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[float] = mapped_column(Float)
    received: Mapped[float] = mapped_column(Float)
    # its training samples and audit entries are in their tables (set in the insert's own
    # transaction; False or None: a resend of the record completes the ingest)
    ingested: Mapped[bool | None] = mapped_column(nullable=True)
