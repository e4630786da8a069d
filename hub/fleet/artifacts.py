"""Bundle archives and dataset files where every hub machine reads them.

Keys name content: ``bundles/<manifest sha256>.tar``, ``datasets/<dataset sha256>/<file>``;
an artifact is written once and never changed. On PostgreSQL the bytes are in the database,
in chunks of ``CHUNK`` bytes (artifacts + artifact_chunks), written in the transaction that
registers the version or dataset: a version row exists only with its archive. Each machine's
DATA directory is a cache of them, filled on first use and checked against the sha256. On
SQLite the DATA directory is the store itself.

Reads are streamed a chunk at a time (memory bounded by CHUNK, whatever the bundle's size),
from any byte offset: HTTP Range works on every API worker."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.fleet.pg import is_postgres
from hub.storage import Artifact, ArtifactChunk

CHUNK = 1 << 20
DATASET_FILES = ("train.csv", "holdout.csv", "meta.json")  # as hub.datasets writes them


class ArtifactError(AgentError):
    """An artifact missing or not what its key says (the message names it)."""


def bundle_key(sha256: str) -> str:
    return f"bundles/{sha256}.tar"


def dataset_keys(sha256: str) -> list[str]:
    return [f"datasets/{sha256}/{name}" for name in DATASET_FILES]


def put(s: Session, key: str, kind: str, path: Path) -> None:
    """Store ``path`` under ``key`` in the session's transaction (PostgreSQL); kept as is if
    the key is there already (content addressed: the same key is the same bytes)."""
    if not is_postgres(s.get_bind()) or s.get(Artifact, key) is not None:
        return
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for seq, block in enumerate(iter(lambda: fh.read(CHUNK), b"")):
            digest.update(block)
            size += len(block)
            part = ArtifactChunk(key=key, seq=seq, data=block)
            s.add(part)
            s.flush()  # one chunk in memory at a time
            s.expunge(part)
    s.add(Artifact(key=key, kind=kind, sha256=digest.hexdigest(), size=size, chunk_size=CHUNK,
                   created=time.time()))


def info(engine: Engine, key: str) -> tuple[int, str] | None:
    """(size, sha256) of a stored artifact, or None."""
    with Session(engine) as s:
        row = s.get(Artifact, key)
        return (row.size, row.sha256) if row else None


def stream(engine: Engine, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` (inclusive; None: to the last) of an artifact, chunk by chunk."""
    with Session(engine) as s:
        row = s.get(Artifact, key)
        if row is None:
            raise ArtifactError(f"no artifact {key}")
        size, chunk = row.size, row.chunk_size
    end = size - 1 if end is None else min(end, size - 1)
    seq = start // chunk
    while seq * chunk <= end:
        lo = max(start - seq * chunk, 0)
        hi = min(end - seq * chunk, chunk - 1)
        with Session(engine) as s:  # a short read per chunk: no transaction held while sending
            part = s.scalar(select(func.substring(ArtifactChunk.data, lo + 1, hi - lo + 1)).where(
                ArtifactChunk.key == key, ArtifactChunk.seq == seq))
        if part is None:
            raise ArtifactError(f"artifact {key} is missing chunk {seq}")
        yield bytes(part)
        seq += 1


def local(engine: Engine, data_dir: Path, key: str) -> Path:
    """The artifact as a file in this machine's DATA directory, fetched from the database if
    another machine stored it; its sha256 is checked before it is used."""
    path = data_dir / key
    if path.is_file() or not is_postgres(engine):
        return path
    found = info(engine, key)
    if found is None:
        return path  # not stored anywhere: the caller says what is missing
    size, sha = found
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    digest = hashlib.sha256()
    with tmp.open("wb") as fh:
        for block in stream(engine, key):
            digest.update(block)
            fh.write(block)
    if digest.hexdigest() != sha or tmp.stat().st_size != size:
        tmp.unlink()
        raise ArtifactError(f"artifact {key} read back with another sha256 than it was stored with")
    tmp.replace(path)
    return path


def local_bundle(engine: Engine, data_dir: Path, sha256: str) -> Path:
    return local(engine, data_dir, bundle_key(sha256))


def local_dataset(engine: Engine, data_dir: Path, sha256: str) -> Path:
    for key in dataset_keys(sha256):
        local(engine, data_dir, key)
    return data_dir / "datasets" / sha256
