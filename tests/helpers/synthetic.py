"""Manifests and streams for detector tests: no model needed, seeded and exact."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from agent.inference.batches import PredictionBatch, SampleBatch, inputs_hash
from agent.models.bundle import Manifest
from agent.monitor.calibrate import Budget, calibrate
from agent.monitor.profile import build_profile


def manifest_for(train: np.ndarray, score: np.ndarray, budget: Budget | None = None,
                 accuracy: float = 0.9, categorical: set[str] | None = None) -> Manifest:
    names = [f"f{i}" for i in range(train.shape[1])]
    cats = categorical or set()
    profile = build_profile(train, names, score, cats)
    conf = np.maximum(score, 1 - score)
    # a fixed function of the inputs, not a fitted model: its outputs on the training rows are
    # as good as held out, so they may calibrate the output-dependent references here
    monitoring = calibrate(train, [profile["features"][n] for n in names], score, profile["prediction"],
                           conf, {"accuracy": accuracy, "n": len(train)}, budget or Budget(),
                           categorical=[n in cats for n in names])
    doc: dict[str, Any] = {
        "name": "synthetic", "version": "1", "runtime": "onnx", "model_file": "model.onnx",
        "inputs": [{"name": n, "tag": n, "kind": "categorical" if n in cats else "numeric"}
                   for n in names],
        "output": {"kind": "classifier", "classes": ["NOK", "OK"], "positive_class": "NOK"},
        "profile": profile, "monitoring": monitoring, "metrics": {"holdout": {"accuracy": accuracy}},
        "self_test": {"inputs": [], "expected_scores": []}, "files": {"model.onnx": "0" * 64},
        "created": "2026-01-01T00:00:00+00:00",
    }
    return Manifest.model_validate(doc)


def batches(x: np.ndarray, score: np.ndarray, size: int, t0: float = 1.7e9):
    """(SampleBatch, PredictionBatch, confidence) in chunks of ``size``."""
    for start in range(0, len(x), size):
        stop = min(len(x), start + size)
        xs = x[start:stop].astype(np.float32)
        s = score[start:stop]
        ts = t0 + np.arange(start, stop, dtype=float)
        samples = SampleBatch([str(i) for i in range(start, stop)], ts, xs)
        preds = PredictionBatch("synthetic", "1", "ab" * 32, samples.ids, samples.timestamps, time.time(),
                                s, (s < 0.5).astype(np.int64), ["NOK", "OK"], inputs_hash(xs))
        yield samples, preds, np.maximum(s, 1 - s)


def logistic_scores(x: np.ndarray) -> np.ndarray:
    """A fixed 'model': P(NOK) from the first two features."""
    return np.asarray(1 / (1 + np.exp(-(x[:, 0] + 0.5 * x[:, 1] - 2.0))))


def replay_with_incidents(monitor: Any, x: np.ndarray, spans: Any, ack_every: int) -> (
        tuple[list[Any], list[Any]]):
    """Feed ``x`` in the batches ``spans`` gives ((start, stop) pairs) through ``monitor`` and
    an incident book whose operator acknowledges the open incident every ``ack_every``
    samples: (condition events, incident events)."""
    from agent.monitor.incidents import FloodGuard, IncidentBook

    book = IncidentBook("synthetic", "1", "sha", FloodGuard())
    score = logistic_scores(x)
    events: list[Any] = []
    incidents: list[Any] = []
    for start, stop in spans:
        if start and start % ack_every == 0:
            incidents += book.acknowledge(None, "operator", 1.7e9 + start)
        ((samples, preds, conf),) = batches(x[start:stop], score[start:stop], stop - start, t0=1.7e9 + start)
        samples = SampleBatch([str(i) for i in range(start, stop)], samples.timestamps, samples.x)
        found = monitor.update(samples, preds, conf)
        events += found
        incidents += book.apply(found)
    return events, incidents
