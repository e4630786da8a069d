"""Hub storage through SQLAlchemy: a SQLite file for one plant, PostgreSQL for a fleet.

Schema changes are numbered steps recorded in ``schema_version``; telemetry is idempotent by a
unique (gateway, seq) key, so an at-least-once upload is stored exactly once.
"""

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
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

SCHEMA_VERSION = 1


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


class Deployment(Base):
    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target: Mapped[str] = mapped_column(String(128))  # a gateway id or "group:NAME"
    model: Mapped[str] = mapped_column(String(128))
    version: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str] = mapped_column(String(16))
    created: Mapped[float] = mapped_column(Float)


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
        if current < 1:
            Base.metadata.create_all(s.connection())
            s.add(SchemaVersion(version=1, applied=time.time()))


def add_gateway(engine: Engine, gateway_id: str, group: str | None = None) -> str:
    """Register a gateway; return its token (shown once, stored hashed)."""
    token = secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        if s.get(Gateway, gateway_id) is None:
            s.add(Gateway(id=gateway_id, group=group, created=time.time()))
            s.flush()
        s.add(Token(token_hash=hash_token(token), role="gateway", gateway_id=gateway_id))
    return token


def add_admin_token(engine: Engine) -> str:
    token = secrets.token_urlsafe(32)
    with Session(engine) as s, s.begin():
        s.add(Token(token_hash=hash_token(token), role="admin"))
    return token


def insert_telemetry(engine: Engine, gateway_id: str, rows: list[dict[str, Any]]) -> int:
    """Store records once: a (gateway, seq) seen before is skipped by the database itself."""
    if not rows:
        return 0
    now = time.time()
    values = [{**r, "gateway_id": gateway_id, "received": now} for r in rows]
    dialect = engine.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Telemetry).values(values).on_conflict_do_nothing(
        index_elements=["gateway_id", "seq"]).returning(Telemetry.id)
    with Session(engine) as s, s.begin():
        inserted = len(s.execute(stmt).all())  # RETURNING lists only the rows really inserted
        s.query(Gateway).filter(Gateway.id == gateway_id).update({"last_seen": now})
        return inserted
