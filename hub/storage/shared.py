"""Tables for a hub of several machines: artifacts every machine reads (bundle archives and
dataset files, content addressed, in chunks) and the retention policy per kind of data.

On SQLite the artifacts live in the data directory and these chunk tables stay empty; on
PostgreSQL they are where every hub machine finds a bundle another one published."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import BigInteger, Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.tables import Base

Int64 = BigInteger().with_variant(Integer(), "sqlite")  # as hub.storage.tables


class Artifact(Base):
    """One immutable file: its key names its content (``bundles/<manifest sha256>.tar``,
    ``datasets/<dataset sha256>/train.csv``), sha256 is the file's own hash."""

    __tablename__ = "artifacts"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Int64)
    chunk_size: Mapped[int] = mapped_column(Integer)
    created: Mapped[float] = mapped_column(Float)


class ArtifactChunk(Base):
    __tablename__ = "artifact_chunks"
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class RetentionPolicy(Base):
    """How many days of one kind of data the hub keeps (edge-hub retention set KIND=DAYS)."""

    __tablename__ = "retention_policy"
    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    days: Mapped[int] = mapped_column(Integer)
    updated: Mapped[float] = mapped_column(Float)
    actor: Mapped[str] = mapped_column(String(128))


_NOT_DECLARED = re.compile(r"^(procrastinate_.*|telemetry_d\d{8}|telemetry_default)$")


def declared(name: str | None, type_: Any, parent_names: Any) -> bool:
    """For Alembic's comparisons (include_name): what the ORM declares, leaving out what
    migration 0004 makes on PostgreSQL besides: procrastinate's tables and telemetry's day
    partitions. (telemetry_once there holds the partition key: see migration 0004.)"""
    return not (type_ == "table" and name and _NOT_DECLARED.match(name))


def declared_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """For Alembic's comparisons (include_object): telemetry_once is compared where it is
    (gateway_id, seq), and left alone where it holds the partition key too (PostgreSQL)."""
    if type_ != "unique_constraint" or name != "telemetry_once":
        return True
    theirs = obj if reflected else compare_to
    return theirs is None or "created" not in {c.name for c in theirs.columns}
