"""TFLite plug-in through LiteRT (ai-edge-litert); tflite-runtime accepted as a fallback."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from agent.errors import InferenceError, RuntimeLoadError
from agent.inference.runtimes import RuntimeOutput

log = logging.getLogger(__name__)


def _interpreter_class() -> Any:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError:
        raise RuntimeLoadError(
            "model.runtime: type 'tflite' needs LiteRT: pip install 'factory-edge-agent[tflite]'"
        ) from None


class TfliteRuntime:
    def __init__(self, model_path: Path, n_inputs: int, threads: int = 1) -> None:
        interpreter_cls = _interpreter_class()
        try:
            self._interp = interpreter_cls(model_path=str(model_path), num_threads=threads)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise RuntimeLoadError(f"{model_path}: LiteRT cannot load the model: {exc}") from exc
        self._in = self._interp.get_input_details()[0]
        self._out = self._interp.get_output_details()[0]
        if int(self._in["shape"][-1]) != n_inputs:
            raise RuntimeLoadError(f"{model_path}: model takes {self._in['shape'][-1]} features, "
                                   f"the manifest declares {n_inputs}")
        self.n_inputs = n_inputs
        self._batch = int(self._in["shape"][0])
        self.predict(np.zeros((1, n_inputs), dtype=np.float32))
        log.info("loaded TFLite model %s (%d threads)", model_path.name, threads)

    def predict(self, x: np.ndarray) -> RuntimeOutput:
        n = len(x)
        try:
            if self._batch != n:  # resizing is cheap; LiteRT needs it for a new batch size
                self._interp.resize_tensor_input(self._in["index"], [n, self.n_inputs])
                self._interp.allocate_tensors()
                self._batch = n
            self._interp.set_tensor(self._in["index"], np.ascontiguousarray(x, dtype=np.float32))
            self._interp.invoke()
            out = self._interp.get_tensor(self._out["index"])
        except (ValueError, RuntimeError) as exc:
            raise InferenceError(f"LiteRT failed on a batch of {n}: {exc}") from exc
        return RuntimeOutput(scores=np.asarray(out, dtype=np.float64).reshape(n, -1), labels=None)
