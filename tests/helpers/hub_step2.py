"""The hub's storage as the last release before Alembic made it (hub/db.py at schema step 2,
copied unchanged but for this docstring): the migration tests build a database with it and
upgrade that in place. Never edit: it is the past."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    UniqueConstraint,
    create_engine,
    func,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SCHEMA_VERSION = 2


class Base(DeclarativeBase):
    pass


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    applied: Mapped[float] = mapped_column(Float)


class Gateway(Base):
    __tablename__ = "gateways"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    group: Mapped[str | None] = mapped_column(String(128), nullable=True)
    created: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float | None] = mapped_column(Float, nullable=True)
    retired: Mapped[float | None] = mapped_column(Float, nullable=True)  # step 2


class Token(Base):
    __tablename__ = "tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))  # admin | gateway
    gateway_id: Mapped[str | None] = mapped_column(ForeignKey("gateways.id"), nullable=True)


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
    seq: Mapped[int] = mapped_column(Integer)
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    chain_ok: Mapped[bool] = mapped_column(default=True)


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
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    gateway_id: Mapped[str] = mapped_column(ForeignKey("gateways.id"))
    seq: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(32))
    items: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    created: Mapped[float] = mapped_column(Float)
    received: Mapped[float] = mapped_column(Float)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_db(url: str) -> Engine:
    engine = create_engine(url, pool_pre_ping=True)
    migrate(engine)
    return engine


def migrate(engine: Engine) -> None:
    """Apply the numbered schema steps that have not run yet."""
    Base.metadata.create_all(engine, tables=[SchemaVersion.__table__])  # type: ignore[list-item]
    with Session(engine) as s, s.begin():
        current = s.scalar(select(func.max(SchemaVersion.version))) or 0
        if current == 0:  # a new database: the whole current schema at once
            Base.metadata.create_all(s.connection())
            s.add(SchemaVersion(version=SCHEMA_VERSION, applied=time.time()))
            return
        for step in range(current + 1, SCHEMA_VERSION + 1):
            for statement in STEPS[step]:
                s.execute(text(statement))
            Base.metadata.create_all(s.connection())  # tables new in this step
            s.add(SchemaVersion(version=step, applied=time.time()))


# upgrades of an existing database, one list of statements per schema version
STEPS: dict[int, list[str]] = {
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


def add_gateway(engine: Engine, gateway_id: str, group: str | None = None) -> str:
    """Register a gateway; return its token (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            s.add(Gateway(id=gateway_id, group=group, created=time.time()))
            s.flush()
        else:
            gw.retired = None
            if group is not None:
                gw.group = group
        s.add(Token(token_hash=hash_token(token), role="gateway", gateway_id=gateway_id))
    return token


def add_admin_token(engine: Engine) -> str:
    token = secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        s.add(Token(token_hash=hash_token(token), role="admin"))
    return token


def insert_telemetry(engine: Engine, gateway_id: str, rows: list[dict[str, Any]]) -> list[int]:
    """Store records once: a (gateway, seq) seen before is skipped by the database itself.
    Returns the sequence numbers really inserted now."""
    if not rows:
        return []
    now = time.time()
    values = [{**r, "gateway_id": gateway_id, "received": now} for r in rows]
    dialect = engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Telemetry).values(values).on_conflict_do_nothing(
        index_elements=["gateway_id", "seq"]).returning(Telemetry.seq)
    with Session(engine) as s, s.begin():
        inserted = [int(r[0]) for r in s.execute(stmt).all()]  # RETURNING: only new rows
        s.query(Gateway).filter(Gateway.id == gateway_id).update({"last_seen": now})
        return inserted


def record(s: Session, model: str, version: str, event: str, gateway_id: str | None = None,
           detail: str | None = None, actor: str = "hub") -> None:
    s.add(HistoryEntry(at=time.time(), model=model, version=version, event=event,
                       gateway_id=gateway_id, detail=(detail or "")[:2000] or None,
                       actor=actor[:128]))


def list_gateways(engine: Engine) -> list[dict[str, Any]]:
    with Session(engine) as s:
        rows = s.execute(select(Gateway, GatewayStatus).outerjoin(
            GatewayStatus, GatewayStatus.gateway_id == Gateway.id).order_by(Gateway.id)).all()
        return [{"id": g.id, "group": g.group, "created": g.created, "last_seen": g.last_seen,
                 "retired": g.retired,
                 "status": st.report if st else None, "status_updated": st.updated if st else None}
                for g, st in rows]


def set_group(engine: Engine, gateway_id: str, group: str | None) -> None:
    with Session(engine) as s, s.begin():
        gw = s.get(Gateway, gateway_id)
        if gw is None:
            raise LookupError(gateway_id)
        gw.group = group


def rotate_token(engine: Engine, gateway_id: str) -> str:
    """Revoke every token of the gateway and issue a new one (a stolen PC, a reinstalled one)."""
    with Session(engine) as s, s.begin():
        if s.get(Gateway, gateway_id) is None:
            raise LookupError(gateway_id)
        s.query(Token).filter(Token.gateway_id == gateway_id).delete()
        token = secrets.token_urlsafe(32)
        s.add(Token(token_hash=hash_token(token), role="gateway", gateway_id=gateway_id))
    return token


def remove_gateway(engine: Engine, gateway_id: str) -> None:
    """Revoke the gateway's tokens and forget its status; its telemetry stays for the record."""
    with Session(engine) as s, s.begin():
        if s.get(Gateway, gateway_id) is None:
            raise LookupError(gateway_id)
        s.query(Token).filter(Token.gateway_id == gateway_id).delete()
        s.query(GatewayStatus).filter(GatewayStatus.gateway_id == gateway_id).delete()
        gw = s.get(Gateway, gateway_id)
        assert gw is not None
        gw.group, gw.retired = None, time.time()
