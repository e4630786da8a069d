"""A real .tflite model (written offline from LiteRT's schema) runs through the tflite plug-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.config import ModelConfig, TfliteRuntimeConfig
from agent.demo.sim.process import history
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.inference.runtimes import load_runtime
from agent.models.builder import build_bundle
from agent.models.bundle import verify_bundle
from agent.models.training import write_csv
from agent.types import Sample
from tests.helpers.tflite_model import write_dense_model


def test_tflite_runtime_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    w = rng.normal(size=(2, 8)).astype(np.float32)
    b = rng.normal(size=2).astype(np.float32)
    path = write_dense_model(tmp_path / "m.tflite", w, b, softmax=True)
    runtime = load_runtime(TfliteRuntimeConfig(type="tflite", threads=1), path, 8)
    for n in (1, 5, 64):  # batch sizes change: the interpreter is resized each time
        x = rng.normal(size=(n, 8)).astype(np.float32)
        z = x @ w.T + b
        expected = np.exp(z - z.max(axis=1, keepdims=True))
        expected /= expected.sum(axis=1, keepdims=True)
        assert np.allclose(runtime.predict(x).scores, expected, atol=1e-5)


def test_tflite_bundle_builds_verifies_and_self_tests(tmp_path: Path) -> None:
    x, names, y = history(300, seed=2)
    mu, sd = x.mean(axis=0), x.std(axis=0)
    # a linear scorer on standardised inputs, folded into the dense layer's weights
    coef = np.array([0.3, 0.3, 0.3, 0.8, 0.3, 0.0, 0.0, -0.7]) / sd
    w = np.stack([coef, -coef]).astype(np.float32)
    b = np.array([-(coef @ mu) - 1.5, (coef @ mu) + 1.5], dtype=np.float32)
    write_csv(tmp_path / "train.csv", x, names, y)
    model = write_dense_model(tmp_path / "m.tflite", w, b, softmax=True)
    bundle = build_bundle(model, tmp_path / "train.csv", "label", "tfl", "1", tmp_path / "bundle",
                          positive_class="NOK")
    assert bundle.manifest.runtime == "tflite" and bundle.manifest.model_file == "model.tflite"
    assert verify_bundle(tmp_path / "bundle", [], allow_unsigned=True).sha256 == bundle.sha256
    loaded = load_model(ModelConfig(bundle=tmp_path / "bundle", allow_unsigned=True),
                        tmp_path / "bundle", tmp_path / "staging")
    assert loaded.bundle.manifest.output.classes == ["NOK", "OK"]
    preds, _ = loaded.predict(SampleBatch.from_samples([Sample("1", 0.0, tuple(x[0]))]))
    assert preds.outputs(0)["label"] in ("OK", "NOK")
