"""edge-hub reproduce: train a version again from its stored dataset snapshot with the recorded
trainer and seed, and compare the predictions on the evaluation set with the registered ones."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.config import OnnxRuntimeConfig
from agent.inference.runtimes import load_runtime
from agent.ingest.csvio import read_table
from agent.models.bundle import unpack, verify_bundle
from hub.datasets import dataset_path
from hub.fleet.artifacts import local_bundle, local_dataset
from hub.registry import HubError, trusted_keys
from hub.retrain import DEFAULT_POLICY, train
from hub.storage import ModelVersion


def reproduce(engine: Engine, data_dir: Path, model: str, version: str) -> dict[str, Any]:
    """Train again from the stored snapshot with the recorded trainer and seed; compare the
    predictions on the evaluation set with the registered version's."""
    with Session(engine) as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                  ModelVersion.version == version)).first()
        if mv is None:
            raise HubError(f"{model} {version} is not published")
        lineage = dict(mv.manifest.get("lineage") or {})
        sha = mv.sha256
        inputs = [i["name"] for i in mv.manifest["inputs"]]
    dataset = lineage.get("dataset_sha256")
    if dataset:  # stored by another hub machine, maybe: fetched into this one's DATA
        local_dataset(engine, data_dir, str(dataset))
        local_bundle(engine, data_dir, sha)
    if not dataset or not dataset_path(data_dir, dataset).exists():
        raise HubError(f"{model} {version} was not trained by the hub from a stored dataset "
                       "(its lineage names none); nothing to reproduce")
    settings = lineage.get("trainer_settings") or {}
    policy = {**DEFAULT_POLICY, "trainer": settings.get("kind", "gbt"),
              "cost_missed_nok": settings.get("cost_missed_nok", 1.0),
              "cost_false_nok": settings.get("cost_false_nok", 1.0)}
    if str(lineage.get("trainer", "")).startswith("custom: "):
        policy["trainer"] = {"command": str(lineage["trainer"]).removeprefix("custom: ").split()}
    work = Path(tempfile.mkdtemp(prefix="reproduce-"))
    try:
        model_file, _ = train(policy, dataset_path(data_dir, dataset), work, int(lineage.get("seed", 0)),
                              settings.get("positive_class"))
        fresh = load_runtime(OnnxRuntimeConfig(type="onnx"), model_file, len(inputs))
        table = read_table(dataset_path(data_dir, dataset) / "holdout.csv")
        x = np.column_stack([table.numeric(f) for f in inputs]).astype(np.float32)
        again = fresh.predict(x).scores
        unpacked = unpack(data_dir / "bundles" / f"{sha}.tar", work)
        bundle = verify_bundle(unpacked, trusted_keys(data_dir))
        runtime = load_runtime(OnnxRuntimeConfig(type="onnx"), bundle.model_path, len(inputs))
        registered = runtime.predict(x).scores
        diff = float(np.max(np.abs(again - registered))) if len(x) else 0.0
        return {"model": model, "version": version, "dataset_sha256": dataset, "rows": len(x),
                "max_abs_difference": diff, "match": diff <= 1e-6}
    finally:
        shutil.rmtree(work, ignore_errors=True)
