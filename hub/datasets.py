"""Versioned training data: a snapshot of labelled samples written as files whose sha256 names
the dataset. A snapshot used for training is never changed; retraining and reproduce read it."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.fleet import artifacts
from hub.storage import Dataset, TrainingSample

FILES = ("train.csv", "holdout.csv", "meta.json")


@dataclass(frozen=True)
class Snapshot:
    sha256: str
    path: Path
    train_rows: int
    holdout_rows: int
    first_ts: float
    last_ts: float


def dataset_sha256(directory: Path) -> str:
    h = hashlib.sha256()
    for name in FILES:
        h.update(name.encode() + b"\0" + (directory / name).read_bytes() + b"\0")
    return h.hexdigest()


def snapshot(engine: Engine, data_dir: Path, model: str, inputs: list[str], classes: list[str],
             since: float, max_rows: int, holdout_share: float) -> Snapshot | None:
    """The newest labelled samples of the model since ``since`` (at most max_rows): the most
    recent share is the holdout (neither the champion nor the challenger trained on it)."""
    with Session(engine) as s:
        rows = list(s.scalars(select(TrainingSample).where(
            TrainingSample.model == model, TrainingSample.ts >= since)
            .order_by(desc(TrainingSample.ts)).limit(max_rows)))
    rows = [r for r in reversed(rows) if r.inputs == inputs and (not classes or r.label in classes)]
    if len(rows) < 20:
        return None
    cut = int(len(rows) * (1 - holdout_share))
    work = Path(tempfile.mkdtemp(prefix="dataset-", dir=_root(data_dir)))
    for name, part in (("train.csv", rows[:cut]), ("holdout.csv", rows[cut:])):
        with (work / name).open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", *inputs, "label"])
            for r in part:
                w.writerow([f"{r.ts:.3f}", *(f"{v:.6g}" for v in r.x), r.label])
    (work / "meta.json").write_text(json.dumps({"model": model, "inputs": inputs, "label": "label",
                                                "classes": classes}, sort_keys=True, indent=1))
    sha = dataset_sha256(work)
    target = _root(data_dir) / sha
    if target.exists():
        shutil.rmtree(work)
    else:
        os.replace(work, target)
    with Session(engine) as s, s.begin():
        if s.get(Dataset, sha) is None:
            s.add(Dataset(sha256=sha, model=model, rows=len(rows), first_ts=rows[0].ts,
                          last_ts=rows[-1].ts, gateways=sorted({r.gateway_id for r in rows}),
                          created=time.time()))
            for key, name in zip(artifacts.dataset_keys(sha), FILES, strict=True):  # shared by the fleet
                artifacts.put(s, key, "dataset", target / name)
    return Snapshot(sha, target, cut, len(rows) - cut, rows[0].ts, rows[-1].ts)


def _root(data_dir: Path) -> Path:
    root = data_dir / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    return root


def dataset_path(data_dir: Path, sha256: str) -> Path:
    return _root(data_dir) / sha256
