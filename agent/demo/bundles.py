"""The demo's models, trained on simulated history and built into signed bundles with a holdout
the model never fitted: the quality classifier (moulding-nok 1.0.0, and 1.1.0 on a newer stretch
for the canary) and the cycle-time regressor (cycle-time 1.0.0)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent.demo.scoreboard import COSTS
from agent.demo.sim.process import CYCLE_INPUTS, PROCESS_TAGS, full_history, history
from agent.models.builder import build_bundle
from agent.models.bundle import generate_keypair
from agent.models.training import class_weights, train_onnx, train_regressor_onnx, write_csv
from agent.monitor.calibrate import Budget

CYCLE_S = 30.0  # simulated seconds per part
QUALITY_MODEL = "moulding-nok"
CYCLE_MODEL = "cycle-time"
# one part per 30 s: one false alarm per feature per week is one per 20,160 parts
BUDGET = Budget(sample_rate_hz=1 / CYCLE_S, window=200)


def signing_keys(out: Path) -> tuple[Path, Path]:
    """(private, public) signing key of the demo, made once per output directory."""
    keys = out / "keys"
    if not (keys / "signing.pem").is_file():
        generate_keypair(keys / "signing.pem", keys / "signing.pub")
    return keys / "signing.pem", keys / "signing.pub"


def prepare_models(out: Path, rows: int = 4000) -> tuple[list[Path], Path]:
    """Train on simulated drift-free history: 1.0.0, and 1.1.0 on a newer stretch of it (the
    version the demo rolls out as a canary). Returns (bundle dirs, public key)."""
    bundles = [prepare_quality(out, "1.0.0", seed=1, rows=rows),
               prepare_quality(out, "1.1.0", seed=2, rows=rows, parent="1.0.0")]
    return bundles, signing_keys(out)[1]


def prepare_quality(out: Path, version: str, seed: int, rows: int = 4000, parent: str | None = None,
                    name: str = QUALITY_MODEL, inputs: list[str] | None = None) -> Path:
    """A quality classifier on ``rows`` parts of drift-free history (seed ``seed``), the newest
    quarter its holdout, on ``inputs`` (default: every process tag). Returns the bundle dir."""
    key, _ = signing_keys(out)
    x_all, names, y = history(rows, seed=seed)
    names = inputs or names
    x = x_all[:, [PROCESS_TAGS.index(t) for t in names]]
    split = int(rows * 0.75)
    data = out / "data" / (version if name == QUALITY_MODEL else f"{name}-{version}")
    data.mkdir(parents=True, exist_ok=True)
    write_csv(data / "train.csv", x[:split], names, y[:split])
    write_csv(data / "holdout.csv", x[split:], names, y[split:])
    # the plant's costs weigh the training parts, as the hub's trainer does on a retrain
    model = train_onnx(x[:split], y[:split], data / "model.onnx", kind="auto", seed=seed,
                       class_weight=class_weights(COSTS.missed, COSTS.false, COSTS.positive))
    bundle_dir = out / "bundles" / f"{name}-{version}"
    build_bundle(model, data / "train.csv", "label", name, version, bundle_dir,
                 holdout_csv=data / "holdout.csv", positive_class="NOK", signing_key=key,
                 lineage={"trainer": "sklearn, cost-weighted (auto: logistic or gradient boosting)",
                          "parent_version": parent,
                          "reason": "initial" if parent is None else "retrained on newer history"},
                 budget=BUDGET, cost_missed_nok=COSTS.missed, cost_false_nok=COSTS.false)
    return bundle_dir


def prepare_cycle_time(out: Path, rows: int = 4000, seed: int = 3) -> Path:
    """The cycle-time regressor on drift-free history of the tags the cycle time follows;
    the newest quarter is its holdout. Returns the bundle dir (signed with the demo's key)."""
    key, _ = signing_keys(out)
    x_all, _, _, cycle = full_history(rows, seed=seed)
    x = x_all[:, [PROCESS_TAGS.index(t) for t in CYCLE_INPUTS]]
    split = int(rows * 0.75)
    data = out / "data" / f"{CYCLE_MODEL}-1.0.0"
    data.mkdir(parents=True, exist_ok=True)
    cycle_text = np.array([f"{v:.3f}" for v in cycle])
    write_csv(data / "train.csv", x[:split], CYCLE_INPUTS, cycle_text[:split])
    write_csv(data / "holdout.csv", x[split:], CYCLE_INPUTS, cycle_text[split:])
    model = train_regressor_onnx(x[:split], cycle[:split], data / "model.onnx", seed=seed)
    bundle_dir = out / "bundles" / f"{CYCLE_MODEL}-1.0.0"
    build_bundle(model, data / "train.csv", "label", CYCLE_MODEL, "1.0.0", bundle_dir,
                 holdout_csv=data / "holdout.csv", signing_key=key,
                 lineage={"trainer": "sklearn ridge regression", "reason": "initial"},
                 budget=BUDGET)
    return bundle_dir
