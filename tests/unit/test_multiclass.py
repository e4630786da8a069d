"""A model with three classes (OK and two kinds of NOK) through the user's path: trained here,
bundle built by the CLI with defaults, replayed. No test covered more than two classes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from agent.cli import main


def stream(rows: int, seed: int, change: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Six tags; SHORT from one relation, FLASH from another; from ``change`` SHORT follows a
    new relation of the same tags (the tags themselves stay the same)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 6))
    short = x[:, 0] + 0.5 * x[:, 1]
    if change is not None:
        short[change:] = x[change:, 4] - x[change:, 0]
    flash = x[:, 2] - 0.7 * x[:, 3]
    y = np.where(short + 0.4 * rng.normal(size=rows) > 1.3, "SHORT",
                 np.where(flash + 0.4 * rng.normal(size=rows) > 1.5, "FLASH", "OK"))
    return 3 * x + 100, y


def write(path: Path, x: np.ndarray, y: np.ndarray) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", *(f"t{i}" for i in range(x.shape[1])), "label"])
        for i, row in enumerate(x):
            w.writerow([1.75e9 + i, *(f"{v:.6g}" for v in row), y[i]])


def test_three_classes_build_replay_clean_and_catch_a_changed_relation(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from agent.models.training import train_onnx

    x, y = stream(4000, 1)
    assert set(y) == {"OK", "SHORT", "FLASH"}
    model = train_onnx(x[:3000].astype(np.float32), y[:3000], tmp_path / "model.onnx", seed=1)
    write(tmp_path / "train.csv", x, y)
    assert main(["bundle", "build", "--model", str(model), "--train-csv", str(tmp_path / "train.csv"),
                 "--label", "label", "--name", "trim", "--version", "1", "--out", str(tmp_path / "b"),
                 "--positive-class", "SHORT"]) == 0
    built = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(built["metrics"]["per_class"]) == {"OK", "SHORT", "FLASH"}
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(
        {"model": {"bundle": str(tmp_path / "b"), "allow_unsigned": True}}))

    def alarms(x: np.ndarray, y: np.ndarray) -> list[tuple[int, str]]:
        write(tmp_path / "line.csv", x, y)
        assert main(["replay", "--config", str(tmp_path / "replay.yaml"), "--csv",
                     str(tmp_path / "line.csv"), "--out", str(tmp_path / "report.json")]) == 0
        report = json.loads((tmp_path / "report.json").read_text())
        return [(n["index"], n["detector"]) for n in report["notifications"]
                if n["sent"] and n["level"] == "alarm"]

    assert alarms(*stream(20_000, 2)) == []  # drift-free: nothing
    found = alarms(*stream(5000, 3, change=2000))
    assert found and found[0][1] == "performance/error_cusum" and 2000 <= found[0][0] <= 2300, found


def test_replay_incidents_do_not_depend_on_its_batch_size(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Labels and inputs change together: a batch's label events must reach the incident book
    among its sample events in sample order, as a batch of one sample gives them."""
    import agent.monitor.replay as replay_module
    from agent.models.training import train_onnx

    x, y = stream(4000, 1)
    model = train_onnx(x[:3000].astype(np.float32), y[:3000], tmp_path / "model.onnx", seed=1)
    write(tmp_path / "train.csv", x, y)
    assert main(["bundle", "build", "--model", str(model), "--train-csv", str(tmp_path / "train.csv"),
                 "--label", "label", "--name", "trim", "--version", "1", "--out", str(tmp_path / "b"),
                 "--positive-class", "SHORT"]) == 0
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(
        {"model": {"bundle": str(tmp_path / "b"), "allow_unsigned": True}}))
    line, labels = stream(2600, 4, change=1500)
    line[1500:, 5] += 1.5  # an input moves with the relation
    write(tmp_path / "line.csv", line, labels)
    runs = []
    for size in (1, 256):
        monkeypatch.setattr(replay_module, "BATCH", size)
        assert main(["replay", "--config", str(tmp_path / "replay.yaml"), "--csv", str(tmp_path / "line.csv"),
                     "--out", str(tmp_path / "report.json")]) == 0
        report = json.loads((tmp_path / "report.json").read_text())
        runs.append([(n["index"], n["level"], n["detector"], n["sent"]) for n in report["notifications"]])
    capsys.readouterr()
    assert runs[0] == runs[1] and any(n[2] == "performance/error_cusum" for n in runs[0]), runs
