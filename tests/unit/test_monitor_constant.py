"""Inputs that held one value in every reference row (agent.monitor.constant): a setpoint. The
bundle builder failed on one (the pooled CUSUM's law divided by its zero spread); now it is
left out of the drift statistics and watched for any other value, sample by sample."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.cli import main
from agent.monitor.monitor import ModelMonitor
from tests.helpers.synthetic import batches, logistic_scores, manifest_for

SETPOINT = 180.1  # not exact in float32: the line's values come back through it


def reference(rows: int = 4000, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 5))
    x[:, 1] += 0.6 * x[:, 0]
    x[:, 4] = SETPOINT
    return x


def replay(monitor: ModelMonitor, x: np.ndarray, size: int) -> list[tuple[int, str, str | None, str]]:
    out = []
    for samples, preds, conf in batches(x, logistic_scores(x), size):
        out += [(e.index, e.detector, e.feature, e.level) for e in monitor.update(samples, preds, conf)]
    return out


def test_calibration_leaves_a_constant_input_out_of_the_statistics() -> None:
    x = reference()
    manifest = manifest_for(x, logistic_scores(x))
    mon = (manifest.model_extra or {})["monitoring"]
    json.dumps(mon, allow_nan=False)  # no NaN anywhere: every threshold is a number
    assert mon["constant"]["columns"] == [4]
    assert mon["constant"]["values"] == [float(np.float32(SETPOINT))]  # as the line sees it
    assert mon["data"]["columns"] == [0, 1, 2, 3]
    assert len(mon["pooled"]["mean"]) == 4 and mon["budget_split"]["streams"]["cusum"] == 4


def test_a_setpoint_that_moves_raises_at_once_and_ends_after_the_off_delay() -> None:
    x = reference()
    manifest = manifest_for(x, logistic_scores(x))
    line = reference(6000, seed=6)
    line[3000:3200, 4] = 185.0  # the operator moved it, then back
    quiet = ModelMonitor(manifest).quiet
    expected = [(3000, "constant", "f4", "alarm"), (3199 + quiet, "constant", "f4", "ok")]
    for size in (1, 7, 64, 500, 6000):
        got = [e for e in replay(ModelMonitor(manifest), line, size) if e[1] == "constant"]
        assert got == expected, size
    monitor = ModelMonitor(manifest)
    replay(monitor, line[:3100], 64)
    assert monitor.metrics()["off_reference_value"] == ["f4"]


def test_on_its_value_it_raises_nothing_and_a_missing_value_counts_as_off() -> None:
    x = reference()
    manifest = manifest_for(x, logistic_scores(x))
    line = reference(3000, seed=7)  # through float32, like the model's inputs: not an alarm
    assert [e for e in replay(ModelMonitor(manifest), line, 64) if e[1] == "constant"] == []
    line[1000, 4] = np.nan
    got = [(e[0], e[3]) for e in replay(ModelMonitor(manifest), line, 64) if e[1] == "constant"]
    assert got == [(1000, "alarm"), (1000 + ModelMonitor(manifest).quiet, "ok")]


def test_state_restore_keeps_the_condition_and_its_off_delay(tmp_path: Path) -> None:
    from agent.monitor.state import restore_state, save_state

    x = reference()
    manifest = manifest_for(x, logistic_scores(x))
    line = reference(5000, seed=8)
    line[2000:2100, 4] = 190.0
    whole = [e for e in replay(ModelMonitor(manifest), line, 64) if e[1] == "constant"]
    first = ModelMonitor(manifest)
    got = [e for e in replay(first, line[:2304], 64) if e[1] == "constant"]
    save_state(tmp_path / "state.npz", first, "ab" * 32)  # a restart with the alarm up
    second = ModelMonitor(manifest)
    assert restore_state(tmp_path / "state.npz", second, "ab" * 32)
    assert second.constant is not None and second.constant.up.tolist() == [True]
    for samples, preds, conf in batches(line[2304:], logistic_scores(line[2304:]), 64):
        got += [(e.index, e.detector, e.feature, e.level)
                for e in second.update(samples, preds, conf) if e.detector == "constant"]
    assert got == whole and [e[3] for e in whole] == ["alarm", "ok"]
    with pytest.raises(ValueError, match="another number of inputs"):
        second.constant.restore({"up": np.zeros(3, dtype=bool), "back": np.zeros(3)})


def write_csv(path: Path, x: np.ndarray, nok: np.ndarray | None) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *(f"t{i}" for i in range(x.shape[1])), "label"])
        for i, row in enumerate(x):
            label = "" if nok is None else ("NOK" if nok[i] else "OK")
            w.writerow([1.75e9 + i, *(f"{v:.6g}" for v in row), label])


def test_bundle_build_and_replay_with_a_setpoint_column(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from agent.models.training import train_onnx

    x = reference(3000)
    nok = x[:, 0] + 0.5 * x[:, 2] + 0.3 * np.random.default_rng(9).normal(size=len(x)) > 1.2
    model = train_onnx(x[:2000].astype(np.float32), np.where(nok[:2000], "NOK", "OK"),
                       tmp_path / "model.onnx", seed=1)
    write_csv(tmp_path / "train.csv", x, nok)
    rc = main(["bundle", "build", "--model", str(model), "--train-csv", str(tmp_path / "train.csv"),
               "--label", "label", "--name", "press", "--version", "1", "--out", str(tmp_path / "b"),
               "--positive-class", "NOK"])
    err = capsys.readouterr().err
    assert rc == 0, err
    assert "one value in every reference row, so no drift statistics: t4 (180.1)" in err
    line = reference(3000, seed=10)
    line[1500:, 4] = 175.0
    write_csv(tmp_path / "line.csv", line, None)
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(
        {"model": {"bundle": str(tmp_path / "b"), "allow_unsigned": True}}))
    assert main(["replay", "--config", str(tmp_path / "replay.yaml"), "--csv", str(tmp_path / "line.csv"),
                 "--out", str(tmp_path / "report.json")]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    first = next(n for n in report["notifications"] if n["sent"])
    assert (first["index"], first["detector"], first["level"]) == (1500, "data_drift/constant", "alarm")
    assert "t4" in capsys.readouterr().out  # the one-screen summary names it


@pytest.mark.parametrize("derive", ["sum of two tags", "counter-like offset"])
def test_a_derived_tag_or_a_huge_offset_raises_nothing_on_drift_free_rows(derive: str) -> None:
    """Calibrated on float64 rows, both alarmed on drift-free float32 samples at once (a tag that
    is exactly x0 + 2 x2 left the PCA a reference error of ~1e-30, float32 rounding on the line a
    million times more; at 1e9 float32 steps by 64): the reference is now the float32 values."""
    rng = np.random.default_rng(11)
    x, line = rng.normal(size=(4000, 5)), rng.normal(size=(20_000, 5))
    for rows in (x, line):
        rows[:, 4] = rows[:, 0] + 2 * rows[:, 2] if derive == "sum of two tags" else 1e9 + rows[:, 4]
    manifest = manifest_for(x, logistic_scores(x))
    assert [e for e in replay(ModelMonitor(manifest), line, 64) if e[3] == "alarm"] == []


def test_inputs_that_vary_in_one_direction_get_no_multivariate_detector() -> None:
    rng = np.random.default_rng(12)
    x = rng.normal(size=(4000, 3))
    x[:, 1], x[:, 2] = 2 * x[:, 0], x[:, 0] - 1  # three tags, one signal
    mon = (manifest_for(x, logistic_scores(x)).model_extra or {})["monitoring"]
    assert "multivariate" not in mon and "pca_cusum" not in mon["budget_split"]["streams"]
    assert [e for e in replay(ModelMonitor(manifest_for(x, logistic_scores(x))), x, 64)
            if e[1] == "pca_cusum"] == []
