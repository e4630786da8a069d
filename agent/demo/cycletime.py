"""The demo's account of the second model, the cycle-time regressor: its predictions by part,
scored against the cycle time the line measured for that part (the label the agent joins),
before the drift, after the resin change and after the relation change; and the incidents of
that model. Neither change touches the cycle time or its inputs: its error must stay flat and
no incident may be the cycle-time model's."""

from __future__ import annotations

import math
from typing import Any

from agent.inference.batches import PredictionBatch, SampleBatch
from agent.monitor.incidents import IncidentEvent

FLAT_FACTOR = 1.25  # "flat": the MAE after each change at most this times the MAE before


class CycleBoard:
    def __init__(self, model: str) -> None:
        self.model = model
        self.predicted: dict[int, float] = {}  # part -> predicted cycle time, seconds
        self.events: list[IncidentEvent] = []
        self.monitor: dict[str, Any] = {}  # the agent's own figures, taken before it stops

    def take_monitor(self, unit: Any) -> None:
        if unit.watch is not None:
            self.monitor = unit.watch.figures()

    def on_predictions(self, samples: SampleBatch, batch: PredictionBatch) -> None:
        if batch.model_name != self.model:
            return
        for i, sample_id in enumerate(batch.sample_ids):
            if sample_id.isdigit():
                self.predicted[int(sample_id)] = float(batch.score[i])

    def on_event(self, event: IncidentEvent) -> None:
        if event.model == self.model:
            self.events.append(event)

    def errors(self, truth: dict[int, float], first: int, last: int) -> dict[str, Any]:
        """MAE and RMSE over the predicted parts first <= part < last, in seconds."""
        err = [self.predicted[p] - truth[p] for p in self.predicted if first <= p < last and p in truth]
        if not err:
            return {"mae_s": None, "rmse_s": None, "parts": 0}
        return {"mae_s": round(sum(abs(e) for e in err) / len(err), 4),
                "rmse_s": round(math.sqrt(sum(e * e for e in err) / len(err)), 4), "parts": len(err)}


def cycle_section(board: CycleBoard, unit: Any, truth: dict[int, float], onsets: dict[str, int],
                  holdout: dict[str, Any] | None) -> dict[str, Any]:
    """The summary's section of the cycle-time model."""
    end = max(truth, default=0) + 1
    phases = {"before_drift": board.errors(truth, 0, onsets["resin"]),
              "after_resin": board.errors(truth, onsets["resin"], onsets["concept"]),
              "after_relation_change": board.errors(truth, onsets["concept"], end)}
    before = phases["before_drift"]["mae_s"]
    flat = before is not None and all(
        p["mae_s"] is not None and p["mae_s"] <= FLAT_FACTOR * before for p in phases.values())
    monitor = board.monitor
    return {
        "model": unit.model.bundle.label if unit.model is not None else None,
        "predictions": unit.predictions,
        "labels_received": unit.labels_received,
        "inference_errors": unit.inference_errors,
        "holdout": {"mae_s": (holdout or {}).get("mae"), "rmse_s": (holdout or {}).get("rmse"),
                    "parts": (holdout or {}).get("n")},
        **phases,
        "mae_flat": flat,
        "flat_rule": f"MAE after each change at most {FLAT_FACTOR} times the MAE before the drift",
        "agent_rolling_mae_s": monitor.get("rolling_mae"),
        "agent_rolling_rmse_s": monitor.get("rolling_rmse"),
        "incidents": len({e.incident_id for e in board.events}),
        "notifications": sum(1 for e in board.events if e.notify),
    }
