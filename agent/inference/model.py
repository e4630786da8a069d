"""The model the agent runs: a verified bundle, its loaded runtime and how to read its output."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.config import ModelConfig, OnnxRuntimeConfig, RuntimeConfig, TfliteRuntimeConfig
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.runtimes import ModelRuntime, RuntimeOutput, load_runtime
from agent.models.builder import label_text, monitored_score
from agent.models.bundle import Bundle, run_self_test, unpack, verify_bundle

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    bundle: Bundle
    runtime: ModelRuntime

    def __post_init__(self) -> None:
        o = self.bundle.manifest.output
        self.classes = list(o.classes) if o.kind == "classifier" else []
        self._class_pos = {c: i for i, c in enumerate(self.classes)}

    @property
    def name(self) -> str:
        return self.bundle.manifest.name

    @property
    def version(self) -> str:
        return self.bundle.manifest.version

    @property
    def input_tags(self) -> list[str]:
        return [i.tag for i in self.bundle.manifest.inputs]

    def predict_matrix(self, x: np.ndarray) -> RuntimeOutput:
        return self.runtime.predict(x)

    def score(self, out: RuntimeOutput) -> np.ndarray:
        o = self.bundle.manifest.output
        return monitored_score(out, o.kind, o.classes, o.positive_class)

    def predict(self, batch: SampleBatch) -> tuple[PredictionBatch, RuntimeOutput]:
        out = self.runtime.predict(batch.x)
        return self.to_batch(batch, out), out

    def to_batch(self, batch: SampleBatch, out: RuntimeOutput) -> PredictionBatch:
        label_idx = None
        if self.classes:
            label_idx = self._label_index(out)
        b = self.bundle
        return PredictionBatch(b.manifest.name, b.manifest.version, b.sha256, batch.ids,
                               batch.timestamps, time.time(), self.score(out), label_idx,
                               self.classes, None, batch.x)

    def _label_index(self, out: RuntimeOutput) -> np.ndarray:
        if out.labels is None:
            return np.asarray(out.scores.argmax(axis=1))
        # the model's own labels win (it may apply a decision threshold): map them to indices
        uniq, inverse = np.unique(out.labels, return_inverse=True)
        pos = np.array([self._class_pos.get(label_text(u), -1) for u in uniq.tolist()])
        idx = pos[inverse]
        missing = idx < 0
        if missing.any():  # a label outside the manifest's classes: fall back to the scores
            idx[missing] = out.scores[missing].argmax(axis=1)
        return np.asarray(idx)


def load_model(config: ModelConfig, bundle_path: Path, staging: Path) -> LoadedModel:
    """Unpack, verify (hashes + signature), load, self-test. Raises BundleError/RuntimeLoadError."""
    staging.mkdir(parents=True, exist_ok=True)
    directory = unpack(bundle_path, staging)
    bundle = verify_bundle(directory, config.trusted_keys, config.allow_unsigned)
    runtime_cfg: RuntimeConfig = config.runtime
    if bundle.manifest.runtime != runtime_cfg.type:  # the bundle knows what its model file is
        runtime_cfg = (TfliteRuntimeConfig(type="tflite", threads=runtime_cfg.threads)
                       if bundle.manifest.runtime == "tflite"
                       else OnnxRuntimeConfig(type="onnx", threads=runtime_cfg.threads))
    runtime = load_runtime(runtime_cfg, bundle.model_path, len(bundle.manifest.inputs))
    run_self_test(bundle, runtime.predict)
    log.info("model %s active (bundle %s, signed by %s)", bundle.label, bundle.sha256[:12],
             bundle.signed_by or "nobody")
    return LoadedModel(bundle, runtime)
