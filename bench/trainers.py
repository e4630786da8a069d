"""Which default trainer recovers a classifier from the little data a retrain has: the
cost-weighted logistic regression against cost-weighted gradient boosting (the two ``auto``
chooses between), trained on the first N parts after the simulated line's relation change (five
seeds each) and scored on 3,000 other parts of the changed line. Balanced accuracy and NOK recall
per trainer and N; the first model's figures before the drift are the baseline to come back to.

    python -m bench.trainers
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from agent.demo.sim.process import DriftStep, history
from agent.inference.runtimes import runtime_for_file
from agent.models.scoring import CostMatrix, scores_from_labels
from agent.models.training import class_weights, train_onnx
from bench.common import emit, quick

COSTS = CostMatrix(("NOK", "OK"), "NOK")
CHANGED = [DriftStep("resin", 0.0), DriftStep("concept", 0.0)]


def score(model: Path, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    out = runtime_for_file(model, x.shape[1]).predict(x.astype(np.float32))
    calls = [COSTS.classes[i] for i in out.scores.argmax(axis=1)]
    s = scores_from_labels(list(y), calls, COSTS)
    return {"balanced_accuracy": s["balanced_accuracy"], "nok_recall": s["recall"],
            "cost_per_part": s["cost_per_part"]}


def main() -> None:
    weights = class_weights(COSTS.missed, COSTS.false, COSTS.positive)
    seeds = range(2 if quick() else 5)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        x0, _, y0 = history(3000, seed=1)
        xb, _, yb = history(3000, seed=98)
        base = score(train_onnx(x0, y0, work / "first.onnx", kind="auto", class_weight=weights), xb, yb)
        xt, _, yt = history(3000, seed=99, drift=CHANGED)
        for n in (150, 300):
            for kind in ("logistic", "gbt"):
                runs = []
                for seed in seeds:
                    x, _, y = history(n, seed=200 + seed, drift=CHANGED)  # the first n parts after it
                    model = train_onnx(x, y, work / "m.onnx", kind=kind, class_weight=weights)
                    runs.append(score(model, xt, yt))
                emit(bench="trainers", trainer=kind, rows=n, seeds=len(runs),
                     balanced_accuracy=[min(r["balanced_accuracy"] for r in runs),
                                        max(r["balanced_accuracy"] for r in runs)],
                     nok_recall=[min(r["nok_recall"] for r in runs), max(r["nok_recall"] for r in runs)],
                     baseline_first_model_before_drift=base)


if __name__ == "__main__":
    main()
