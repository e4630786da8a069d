"""Labels reach the monitor of the version that made the prediction, and only finite ones.

The label table (STATE_DIR/labels.db) outlives a version switch: a label that arrives after
the switch for a part the previous version predicted must not be judged against the new
version (whose monitor never saw that prediction). A regression's NaN or infinite label is
refused and counted, never fed to its error sums."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent.config import ModelConfig, MonitoringConfig
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel, load_model
from agent.models.builder import build_bundle
from agent.monitor.labeljoin import LabelJoin
from agent.monitor.watch import ModelWatch
from agent.types import Label
from tests.helpers.versions import variant

T0 = 1.75e9


def feed(watch: ModelWatch, model: LoadedModel, rows: np.ndarray, prefix: str) -> list[str]:
    ids = [f"{prefix}-{i}" for i in range(len(rows))]
    batch = SampleBatch(ids, T0 + np.arange(len(rows), dtype=np.float64), rows)
    preds, out = model.predict(batch)
    watch.on_batch(batch, preds, out)
    return ids


def label_of(watch: ModelWatch, model: LoadedModel, sample_id: str, rows: np.ndarray,
             ids: list[str]) -> Label:
    """The class the model predicted for this part: a label the monitor can judge."""
    i = ids.index(sample_id)
    preds, _ = model.predict(SampleBatch([sample_id], np.array([T0 + i]), rows[i:i + 1]))
    assert preds.label_idx is not None
    return Label(sample_id, model.classes[int(preds.label_idx[0])], time.time())


def test_a_label_is_judged_only_by_the_version_that_made_its_prediction(
        trained: dict[str, Path], tmp_path: Path) -> None:
    config = ModelConfig(bundle=trained["bundle"], trusted_keys=[trained["pub"]])
    first = load_model(config, trained["bundle"], tmp_path / "staging-1")
    other = variant(trained["bundle"], "1.1.0", tmp_path / "v1.1.0", trained["key"])
    second = load_model(ModelConfig(bundle=other, trusted_keys=[trained["pub"]]), other,
                        tmp_path / "staging-2")
    assert first.bundle.sha256 != second.bundle.sha256
    rows = np.loadtxt(trained["holdout"], delimiter=",", skiprows=1, usecols=range(8),
                      dtype=np.float32)[:40]
    state = tmp_path / "state"
    watch = ModelWatch(first, MonitoringConfig(), state)
    old_ids = feed(watch, first, rows, "old")
    watch.on_label(label_of(watch, first, old_ids[0], rows, old_ids))
    assert watch.monitor.labels == 1 and watch.last_joined_id == old_ids[0]
    watch.close()  # the switch: the pending predictions of 1.0.0 stay in labels.db

    watch = ModelWatch(second, MonitoringConfig(), state)
    for sid in old_ids[1:4]:  # QC verdicts on parts 1.0.0 made, arriving after the switch
        assert watch.on_label(label_of(watch, first, sid, rows, old_ids)) == []
    assert watch.monitor.labels == 0 and watch.last_joined_id is None
    new_ids = feed(watch, second, rows, "new")
    watch.on_label(label_of(watch, second, new_ids[0], rows, new_ids))
    assert watch.monitor.labels == 1 and watch.last_joined_id == new_ids[0]
    join = watch.figures()["labels_join"]
    assert join["other_version_labels"] == 3 and join["labelled"] == 2  # 1 before, 1 after
    watch.close()


def test_a_join_refuses_predictions_of_another_bundle_and_of_a_table_that_recorded_none(
        tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "l.db")  # a table of the release before bundles were kept
    db.execute("CREATE TABLE pending (sample_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, ts REAL NOT "
               "NULL, predicted REAL NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO pending VALUES ('legacy', 3, 5.0, 1.0, ?)", (time.time(),))
    db.commit()
    db.close()

    def preds(ids: list[str], bundle: str) -> PredictionBatch:
        n = len(ids)
        return PredictionBatch("m", "1", bundle, ids, 10.0 + np.arange(n, dtype=float), time.time(),
                               np.full(n, 0.2), np.ones(n, dtype=np.int64), ["NOK", "OK"],
                               np.zeros(n, dtype=np.uint64))

    mine, theirs = "ab" * 32, "cd" * 32
    join = LabelJoin(tmp_path / "l.db", 3600, 1000, bundle=mine)
    join.add(preds(["a", "b"], theirs), 0)
    join.add(preds(["c"], mine), 2)
    assert join.join("a", 20.0) is None  # not flushed yet: refused from the fresh rows too
    join.flush()
    assert join.join("b", 20.0) is None and join.join("legacy", 20.0) is None
    got = join.join("c", 20.0)
    assert got is not None and got.index == 2
    figures = join.figures()
    assert figures["other_version_labels"] == 3 and figures["labelled"] == 1
    assert figures["unmatched_labels"] == 0 and figures["pending"] == 0  # used up, not kept
    join.close()
    again = LabelJoin(tmp_path / "l.db", 3600, 1000, bundle=mine)
    assert again.figures()["other_version_labels"] == 3  # the count survives a restart
    again.close()


@pytest.fixture(scope="module")
def regression(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real ONNX linear regression on three noisy inputs, bundled by the builder."""
    from skl2onnx import to_onnx
    from sklearn.linear_model import LinearRegression

    root = tmp_path_factory.mktemp("regression")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(600, 3)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5], dtype=np.float32) + 0.1 * rng.normal(size=600)
    onnx = to_onnx(LinearRegression().fit(x[:400], y[:400]), x[:1])
    (root / "model.onnx").write_bytes(onnx.SerializeToString())
    lines = ["timestamp,a,b,c,cycle_s"] + [f"{T0 + i:.0f},{r[0]:.6f},{r[1]:.6f},{r[2]:.6f},{v:.6f}"
                                          for i, (r, v) in enumerate(zip(x, y, strict=True))]
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    build_bundle(root / "model.onnx", root / "train.csv", "cycle_s", "cycle", "1", root / "bundle",
                 inputs=["a", "b", "c"])
    model = load_model(ModelConfig(bundle=root / "bundle", allow_unsigned=True), root / "bundle",
                       root / "staging")
    return {"model": model, "x": x}


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "nan", "Infinity", 1e400])
def test_a_non_finite_regression_label_is_refused_and_counted(
        regression: dict[str, Any], tmp_path: Path, value: Any) -> None:
    model, x = regression["model"], regression["x"][:8]
    assert not model.classes
    watch = ModelWatch(model, MonitoringConfig(), tmp_path)
    ids = feed(watch, model, x, "p")
    assert watch.on_label(Label(ids[0], value, time.time())) == []
    assert watch.non_finite_label_values == 1 and watch.monitor.labels == 0
    watch.on_label(Label(ids[1], 1.25, time.time()))  # a finite one still counts
    figures = watch.figures()
    assert watch.monitor.labels == 1 and figures["non_finite_label_values"] == 1
    assert math.isfinite(figures["rolling_mae"]) and math.isfinite(figures["rolling_rmse"])
    assert figures["labels_join"]["pending"] == 7  # the refused label used up no prediction
    watch.close()


def test_a_non_finite_regression_error_fed_directly_leaves_the_rolling_errors_finite(
        regression: dict[str, Any]) -> None:
    from agent.monitor.monitor import ModelMonitor

    monitor = ModelMonitor(regression["model"].bundle.manifest)
    monitor.on_labels(np.arange(4), np.array([1.0, math.nan, math.inf, 2.0]), np.array([1.5, 1.0, 1.0, 1.0]))
    figures = monitor.metrics()
    assert figures["rolling_mae"] == pytest.approx(0.75) and math.isfinite(figures["rolling_rmse"])
