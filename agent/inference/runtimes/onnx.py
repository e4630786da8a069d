"""onnxruntime plug-in: one session, fixed thread count, warmed up at load."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import InferenceError, RuntimeLoadError
from agent.inference.runtimes import RuntimeOutput

log = logging.getLogger(__name__)


class OnnxRuntime:
    def __init__(self, model_path: Path, n_inputs: int, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        try:
            self._session = ort.InferenceSession(
                str(model_path), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise RuntimeLoadError(f"{model_path}: onnxruntime cannot load the model: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise RuntimeLoadError(f"{model_path}: expected one input tensor, found {len(inputs)}")
        self._input = inputs[0].name
        shape = inputs[0].shape
        if len(shape) == 2 and isinstance(shape[1], int) and shape[1] != n_inputs:
            raise RuntimeLoadError(
                f"{model_path}: model takes {shape[1]} features, the manifest declares {n_inputs}"
            )
        self.n_inputs = n_inputs
        outs = self._session.get_outputs()
        # skl2onnx classifiers emit (label, probabilities); regressors a single tensor. With
        # probabilities at hand the label is their argmax, so only they are fetched (faster).
        label = next((o.name for o in outs if "label" in o.name.lower()), None)
        score = next((o.name for o in outs if o.name != label), None)
        self._output_names = [score] if score else [label or outs[0].name]
        self._label_idx = None if score else 0
        self._score_idx = 0
        self.predict(np.zeros((1, n_inputs), dtype=np.float32))  # warm-up: allocate arenas now
        log.info("loaded ONNX model %s (%d threads)", model_path.name, threads)

    def predict(self, x: np.ndarray) -> RuntimeOutput:
        try:
            result: list[Any] = self._session.run(self._output_names, {self._input: x})
        except Exception as exc:
            raise InferenceError(f"onnxruntime failed on a batch of {len(x)}: {exc}") from exc
        labels = np.asarray(result[self._label_idx]) if self._label_idx is not None else None
        scores = _as_matrix(result[self._score_idx], len(x))
        return RuntimeOutput(scores=scores, labels=labels)


def _as_matrix(raw: Any, n: int) -> np.ndarray:
    if isinstance(raw, list):  # ZipMap output: a list of {class: probability}
        keys = sorted(raw[0].keys()) if raw else []
        return np.array([[row[k] for k in keys] for row in raw], dtype=np.float64)
    arr = np.asarray(raw, dtype=np.float64)
    return arr.reshape(n, -1)
