"""Build a bundle from a model trained anywhere plus the CSV it was trained on."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from agent import __version__
from agent.errors import BundleError
from agent.inference.runtimes import RuntimeOutput, runtime_for_file
from agent.ingest.csvio import Table, read_table
from agent.models.bundle import Bundle, load_private_key, sign_bundle, verify_bundle, write_manifest
from agent.models.scoring import (
    DEFAULT_COST_FALSE,
    DEFAULT_COST_MISSED,
    CostError,
    CostMatrix,
    check_costs,
    regression_scores,
    scores_from_labels,
)
from agent.monitor import holdout
from agent.monitor.budget import Budget
from agent.monitor.calibrate import calibrate
from agent.monitor.profile import build_profile

SELF_TEST_ROWS = 8


def class_order(raw_labels: list[str]) -> list[str]:
    """Classes in the order scikit-learn (and so skl2onnx) scores them: sorted by value."""
    uniq = sorted(set(s.strip() for s in raw_labels if s.strip()))
    try:
        return [str(v) for v in sorted(int(float(u)) for u in uniq)]
    except ValueError:
        return uniq


def monitored_score(out: RuntimeOutput, kind: str, classes: list[str], positive: str | None) -> (
        np.ndarray):
    """The one score per sample that prediction-drift watches."""
    if kind == "regression" or out.scores.shape[1] == 1:
        return out.scores[:, 0]
    if positive is not None and positive in classes:
        return np.asarray(out.scores[:, classes.index(positive)])
    return np.asarray(out.scores.max(axis=1))


def predicted_labels(out: RuntimeOutput, classes: list[str]) -> list[str]:
    if out.labels is not None:
        return [label_text(v) for v in out.labels.tolist()]
    return [classes[i] for i in out.scores.argmax(axis=1)]


def label_text(value: Any) -> str:
    """A class label as the manifest writes it: b'OK' -> 'OK', 1.0 -> '1'."""
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def classifier_metrics(truth: list[str], pred: list[str], costs: CostMatrix) -> dict[str, Any]:
    """Holdout figures of a classifier: per class recall/precision with intervals, balanced
    accuracy, cost per part, accuracy (agent.models.scoring)."""
    try:
        return scores_from_labels(truth, pred, costs)
    except ValueError as exc:
        raise BundleError(f"--model: its predictions do not match the CSV's classes: {exc}") from None


def regression_metrics(truth: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    return regression_scores(truth, pred)


def _rows(table: Table, features: list[str]) -> np.ndarray:
    return np.column_stack([table.numeric(f) for f in features]).astype(np.float32)


def build_bundle(
    model: Path,
    train_csv: Path,
    label: str,
    name: str,
    version: str,
    out: Path,
    inputs: list[str] | None = None,
    holdout_csv: Path | None = None,
    positive_class: str | None = None,
    signing_key: Path | None = None,
    lineage: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    budget: Budget | None = None,
    categorical: list[str] | None = None,
    cost_missed_nok: float = DEFAULT_COST_MISSED,
    cost_false_nok: float = DEFAULT_COST_FALSE,
    notes: list[str] | None = None,
) -> Bundle:
    """Build (and sign) a bundle. Every output-dependent reference and the holdout metrics come
    from rows the model never fitted: ``holdout_csv``, or else the newest quarter of
    ``train_csv`` by time (the model must not have been fitted on it; refused when too few).
    What the user should be told is appended to ``notes``."""
    try:
        missed, false = check_costs(cost_missed_nok, cost_false_nok, "--cost-missed-nok",
                                    "--cost-false-nok")
    except CostError as exc:
        raise BundleError(str(exc)) from None
    if not model.is_file():
        raise BundleError(f"--model: file not found: {model}")
    table = read_table(train_csv)
    table.require([label])
    features = inputs or [c for c in table.columns if c not in (label, "timestamp")]
    table.require(features)
    x_table = _rows(table, features)
    labels = table.text(label)
    runtime = runtime_for_file(model, len(features))
    if holdout_csv is not None:
        eval_table = read_table(holdout_csv)
        eval_table.require([label, *features])
        split = holdout.from_csv(table, eval_table)
        x_eval = _rows(eval_table, features)
        x_all = np.concatenate([x_table, x_eval])  # inputs: every row, in time order
    else:
        eval_table = None
        split = holdout.newest_share(table)
        assert split.held_out is not None
        x_eval = x_table[split.held_out]
        x_all = x_table[np.concatenate([split.fitted, split.held_out])]
    if split.note and notes is not None:
        notes.append(split.note)
    out_self = runtime.predict(x_table[:SELF_TEST_ROWS])
    out_eval = runtime.predict(x_eval)
    is_classifier = out_eval.labels is not None or out_eval.scores.shape[1] > 1
    classes = class_order(labels) if is_classifier else []
    if positive_class is not None and positive_class not in classes:
        raise BundleError(f"--positive-class: '{positive_class}' is not one of {classes}")
    positive = positive_class or (classes[-1] if classes else None)
    kind = "classifier" if is_classifier else "regression"
    costs = CostMatrix(tuple(classes), positive, missed, false) if is_classifier else None
    errors: np.ndarray | None = None
    outcomes: tuple[np.ndarray, np.ndarray] | None = None
    if costs is not None:
        raw = eval_table.text(label) if eval_table is not None else [
            labels[i] for i in split.held_out.tolist()]  # type: ignore[union-attr]
        truth = [label_text(v) for v in raw]
        strange = sorted(set(truth) - set(classes))
        if strange:
            raise BundleError(f"--holdout-csv: labels {strange} are not among the training classes {classes}")
        predicted = predicted_labels(out_eval, classes)
        metrics: dict[str, Any] = classifier_metrics(truth, predicted, costs)
        errors = (np.asarray(truth) != np.asarray(predicted)).astype(np.float64)
        if len(classes) == 2 and positive is not None and out_eval.scores.shape[1] == 2:
            outcomes = (np.asarray(out_eval.scores[:, classes.index(positive)], dtype=np.float64),
                        np.asarray(truth) == positive)
    else:
        values = eval_table.numeric(label) if eval_table is not None else table.numeric(label)[
            split.held_out]
        metrics = regression_metrics(values, out_eval.scores[:, 0])
    metrics["in_sample"] = False
    metrics["rows_from"] = split.record

    out.mkdir(parents=True, exist_ok=True)
    model_file = "model.tflite" if model.suffix == ".tflite" else "model.onnx"
    if model.resolve() != (out / model_file).resolve():
        shutil.copyfile(model, out / model_file)
    for stale in ("manifest.sig",):
        (out / stale).unlink(missing_ok=True)
    cats = set(categorical or [])
    unknown = cats - set(features)
    if unknown:
        raise BundleError(f"--categorical: {', '.join(sorted(unknown))} not among the inputs {features}")
    scores = monitored_score(out_eval, kind, classes, positive)
    profile = build_profile(x_all.astype(np.float64), features, scores, cats)
    confidence = out_eval.scores.max(axis=1) if is_classifier and out_eval.scores.shape[1] > 1 else None
    monitoring = calibrate(x_all.astype(np.float64), [profile["features"][f] for f in features], scores,
                           profile["prediction"], confidence, metrics, budget or Budget(),
                           categorical=[f in cats for f in features], source=split.record,
                           error_bits=errors, outcomes=outcomes)
    n_test = min(SELF_TEST_ROWS, len(x_table))
    manifest: dict[str, Any] = {
        "format": 1, "name": name, "version": version,
        "runtime": "tflite" if model_file.endswith(".tflite") else "onnx",
        "model_file": model_file,
        "inputs": [{"name": f, "tag": f, "dtype": "float32",
                    "kind": "categorical" if f in cats else "numeric"} for f in features],
        "output": {"kind": kind, "classes": classes, "positive_class": positive},
        "profile": profile,
        "monitoring": monitoring,
        "metrics": {"holdout": metrics},
        **({"costs": costs.to_manifest()} if costs is not None else {}),
        "lineage": {
            "training_data": _data_summary(table, train_csv),
            "trainer": "external", "builder": f"factory-edge-agent {__version__}",
            "parent_version": None, "reason": "initial", **(lineage or {}),
        },
        "self_test": {
            "inputs": x_table[:n_test].tolist(),
            "expected_scores": out_self.scores[:n_test].tolist(),
            "expected_labels": predicted_labels(out_self, classes)[:n_test] if classes else None,
        },
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        **(extra or {}),
    }
    write_manifest(out, manifest)
    if signing_key is None:
        return verify_bundle(out, [], allow_unsigned=True)
    sign_bundle(out, signing_key)
    return verify_bundle(out, [load_private_key(signing_key).public_key()])


def _data_summary(table: Table, path: Path) -> dict[str, Any]:
    summary: dict[str, Any] = {"file": path.name, "sha256": table.sha256, "rows": table.rows}
    if "timestamp" in table.data and table.rows:
        stamps = table.data["timestamp"]
        summary["time_range"] = [stamps[0], stamps[-1]]
    return summary
