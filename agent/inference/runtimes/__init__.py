"""Model runtimes as plug-ins: one file per runtime plus one line in ``RUNTIMES``.

A runtime loads a model file and runs batches of float32 rows. It is synchronous and pure
so `run` and `replay` share it unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agent.config import RuntimeConfig
from agent.errors import RuntimeLoadError


@dataclass(frozen=True, slots=True)
class RuntimeOutput:
    """``scores`` is (n, k): class probabilities, or (n, 1) regression values.

    ``labels`` holds the model's own predicted labels when it emits them, else None.
    """

    scores: np.ndarray
    labels: np.ndarray | None


class ModelRuntime(Protocol):
    n_inputs: int

    def predict(self, x: np.ndarray) -> RuntimeOutput: ...


def load_runtime(config: RuntimeConfig, model_path: Path, n_inputs: int) -> ModelRuntime:
    if config.type == "onnx":
        from agent.inference.runtimes.onnx import OnnxRuntime

        return OnnxRuntime(model_path, n_inputs, threads=config.threads)
    if config.type == "tflite":
        from agent.inference.runtimes.tflite import TfliteRuntime

        return TfliteRuntime(model_path, n_inputs, threads=config.threads)
    raise RuntimeLoadError(f"model.runtime.type: unknown runtime '{config.type}'")


def runtime_for_file(model_path: Path, n_inputs: int, threads: int = 1) -> ModelRuntime:
    """Pick the runtime from the model file's extension (bundle builder, self-tests)."""
    from agent.config import OnnxRuntimeConfig, TfliteRuntimeConfig

    config: RuntimeConfig
    if model_path.suffix == ".tflite":
        config = TfliteRuntimeConfig(type="tflite", threads=threads)
    else:
        config = OnnxRuntimeConfig(type="onnx", threads=threads)
    return load_runtime(config, model_path, n_inputs)
