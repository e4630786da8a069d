"""Champion and challenger on the same labelled parts: each bundle's calls on the holdout, and
the verdict of ``agent.models.scoring.challenger_verdict`` on them (expected cost with a paired
test, and a floor under every class recall; accuracy is reported, never decisive)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import OnnxRuntimeConfig
from agent.errors import AgentError
from agent.inference.batches import SampleBatch
from agent.inference.model import LoadedModel
from agent.inference.runtimes import load_runtime
from agent.ingest.csvio import read_table
from agent.models import scoring
from agent.models.bundle import unpack, verify_bundle
from agent.models.scoring import CostMatrix
from hub.registry import trusted_keys


def predictions_of_bundle(bundle_dir: Path, holdout: Path, inputs: list[str],
                          keys: list[Path]) -> tuple[list[str], list[str]]:
    """(the bundle's predicted labels, the true labels) on the holdout rows."""
    bundle = verify_bundle(bundle_dir, keys)
    runtime = load_runtime(OnnxRuntimeConfig(type="onnx"), bundle.model_path, len(inputs))
    loaded = LoadedModel(bundle, runtime)
    table = read_table(holdout)
    x = np.column_stack([table.numeric(f) for f in inputs]).astype(np.float32)
    batch = SampleBatch([str(i) for i in range(len(x))], np.zeros(len(x)), x)
    preds, _ = loaded.predict(batch)
    if preds.label_idx is None:
        raise AgentError(f"{bundle.label} is not a classifier: champion/challenger needs class labels")
    labels = [str(v) for v in table.data["label"]]
    return [loaded.classes[i] for i in preds.label_idx.tolist()], labels


def predictions_of_archive(data_dir: Path, sha256: str, holdout: Path,
                           inputs: list[str]) -> tuple[list[str], list[str]]:
    work = Path(tempfile.mkdtemp(prefix="champion-"))
    try:
        return predictions_of_bundle(unpack(data_dir / "bundles" / f"{sha256}.tar", work), holdout,
                                     inputs, trusted_keys(data_dir))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def compare(truth: list[str], champion: list[str], challenger: list[str], costs: CostMatrix,
            margin: float, floor: float, significance: float) -> tuple[bool, str, dict[str, Any]]:
    """(publish, reason, figures) for two versions' calls on the same holdout rows."""
    index = {c: i for i, c in enumerate(costs.classes)}
    unknown = sorted({v for v in [*truth, *champion, *challenger] if v not in index})
    if unknown:
        raise AgentError(f"labels {unknown} are not among the model's classes {list(costs.classes)}")
    t, a, b = (np.array([index[v] for v in vs], dtype=np.int64) for vs in (truth, champion, challenger))
    counts = scoring.paired_counts(t, a, b, len(costs.classes))
    return scoring.challenger_verdict(counts, costs, margin, floor, significance)
