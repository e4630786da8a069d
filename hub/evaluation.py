"""Champion and challenger on the same labelled parts: holdout accuracy of a bundle."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from agent.config import OnnxRuntimeConfig
from agent.inference.batches import SampleBatch
from agent.inference.model import LoadedModel
from agent.inference.runtimes import load_runtime
from agent.ingest.csvio import read_table
from agent.models.bundle import unpack, verify_bundle
from hub.registry import trusted_keys


def _predicted_labels(bundle_dir: Path, holdout: Path, inputs: list[str],
                      keys: list[Path]) -> tuple[list[str], list[str]]:
    bundle = verify_bundle(bundle_dir, keys)
    runtime = load_runtime(OnnxRuntimeConfig(type="onnx"), bundle.model_path, len(inputs))
    loaded = LoadedModel(bundle, runtime)
    table = read_table(holdout)
    x = np.column_stack([table.numeric(f) for f in inputs]).astype(np.float32)
    batch = SampleBatch([str(i) for i in range(len(x))], np.zeros(len(x)), x)
    preds, _ = loaded.predict(batch)
    assert preds.label_idx is not None
    labels = [str(v) for v in table.data["label"]]
    return [loaded.classes[i] for i in preds.label_idx.tolist()], labels


def accuracy_of_bundle(bundle_dir: Path, holdout: Path, inputs: list[str], keys: list[Path]) -> float:
    predicted, truth = _predicted_labels(bundle_dir, holdout, inputs, keys)
    return round(sum(p == t for p, t in zip(predicted, truth, strict=True)) / max(1, len(truth)), 4)


def accuracy_of_archive(data_dir: Path, sha256: str, holdout: Path, inputs: list[str]) -> float:
    work = Path(tempfile.mkdtemp(prefix="champion-"))
    try:
        return accuracy_of_bundle(unpack(data_dir / "bundles" / f"{sha256}.tar", work), holdout, inputs,
                                  trusted_keys(data_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)
