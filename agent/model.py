"""The model the agent runs: a verified bundle, its loaded runtime and how to read its output."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.bundle import Bundle, run_self_test, unpack, verify_bundle
from agent.bundle_build import monitored_score
from agent.config import ModelConfig
from agent.runtimes import ModelRuntime, RuntimeOutput, load_runtime
from agent.types import Prediction, Sample

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    bundle: Bundle
    runtime: ModelRuntime

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

    def predict(self, samples: list[Sample]) -> tuple[list[Prediction], RuntimeOutput]:
        x = np.asarray([s.values for s in samples], dtype=np.float32)
        out = self.runtime.predict(x)
        return self.to_predictions(samples, x, out), out

    def to_predictions(self, samples: list[Sample], x: np.ndarray,
                       out: RuntimeOutput) -> list[Prediction]:
        now = time.time()
        manifest = self.bundle.manifest
        score = self.score(out).tolist()
        classes = manifest.output.classes
        if manifest.output.kind == "classifier":
            if out.labels is not None:
                labels = [_text(v) for v in out.labels.tolist()]
            else:
                labels = [classes[i] for i in out.scores.argmax(axis=1).tolist()]
        rows = x.tobytes()
        width = x.shape[1] * 4
        preds = []
        for i, s in enumerate(samples):
            outputs: dict[str, Any]
            if manifest.output.kind == "classifier":
                outputs = {"label": labels[i], "score": round(score[i], 6)}
            else:
                outputs = {"value": score[i]}
            digest = hashlib.sha256(rows[i * width:(i + 1) * width]).hexdigest()[:16]
            preds.append(Prediction(s.sample_id, s.timestamp, now, manifest.name,
                                    manifest.version, self.bundle.sha256, digest, outputs))
        return preds


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def load_model(config: ModelConfig, bundle_path: Path, staging: Path) -> LoadedModel:
    """Unpack, verify (hashes + signature), load, self-test. Raises BundleError/RuntimeLoadError."""
    staging.mkdir(parents=True, exist_ok=True)
    directory = unpack(bundle_path, staging)
    bundle = verify_bundle(directory, config.trusted_keys, config.allow_unsigned)
    runtime_cfg = config.runtime
    if bundle.manifest.runtime != runtime_cfg.type:
        from agent.config import OnnxRuntimeConfig, TfliteRuntimeConfig

        runtime_cfg = (TfliteRuntimeConfig(type="tflite", threads=runtime_cfg.threads)
                       if bundle.manifest.runtime == "tflite"
                       else OnnxRuntimeConfig(type="onnx", threads=runtime_cfg.threads))
    runtime = load_runtime(runtime_cfg, bundle.model_path, len(bundle.manifest.inputs))
    run_self_test(bundle, runtime.predict)
    log.info("model %s active (bundle %s, signed by %s)", bundle.label, bundle.sha256[:12],
             bundle.signed_by or "nobody")
    return LoadedModel(bundle, runtime)
