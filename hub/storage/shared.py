"""Tables for a hub of several machines: artifacts every machine reads (bundle archives and
dataset files, content addressed, in chunks) and the retention policy per kind of data.

On SQLite the artifacts live in the data directory and these chunk tables stay empty; on
PostgreSQL they are where every hub machine finds a bundle another one published."""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from hub.storage.tables import Base

Int64 = BigInteger().with_variant(Integer(), "sqlite")


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
