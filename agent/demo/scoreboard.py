"""The demo's own account of how well the gateway's model did, part by part: predictions joined
to the QC results by serial, scored with the product's scoring (per-class recall and precision,
balanced accuracy, cost per part, accuracy), over any range of parts or a sliding window."""

from __future__ import annotations

from collections import Counter, deque
from typing import Any

from agent.inference.batches import PredictionBatch, SampleBatch
from agent.models.scoring import CostMatrix, scores_from_labels
from agent.monitor.incidents import IncidentEvent
from agent.types import Label

COSTS = CostMatrix(("NOK", "OK"), "NOK")  # the demo's cost matrix: the product's defaults, 10 and 1
WINDOW = 100  # parts per point of the curves: about 15 NOK parts, enough for a recall


class Scoreboard:
    """Joins predictions to QC results by serial, and remembers which part each monitor sample
    was, to place alarms relative to the drift onsets. With ``model``, the predictions and
    events of other models on the gateway are not its business (their versions and sample
    counts are their own)."""

    def __init__(self, model: str | None = None) -> None:
        self.model = model
        self.predicted: dict[str, tuple[str, str]] = {}  # serial -> (prediction, version that made it)
        self.hits: deque[bool] = deque(maxlen=200)
        self.by_part: dict[int, tuple[str, str]] = {}  # part -> (truth, prediction)
        # part -> the version that answered for it: recovery is judged on the new version's
        # calls only (a batch its predecessor answered, e.g. after an inference error, is not its)
        self.version_of: dict[int, str] = {}
        self.sample_parts: list[int] = []
        self.joined = 0
        # each activation's monitor counts its samples from 0: where the current count starts
        self.offsets: dict[str, int] = {}
        self._last_version: str | None = None
        # id(event) -> (part, part where the change behind it is estimated to start)
        self.event_parts: dict[int, tuple[int, int | None]] = {}

    def part_of(self, version: str, index: int) -> int:
        i = self.offsets.get(version, 0) + index
        return self.sample_parts[i] if 0 <= i < len(self.sample_parts) else -1

    def on_event(self, event: IncidentEvent) -> None:
        if self.model is not None and event.model != self.model:
            return
        start = event.start_index
        self.event_parts[id(event)] = (self.part_of(event.model_version, event.index),
                                       None if start is None else self.part_of(event.model_version, start))

    def part_of_event(self, event: IncidentEvent) -> int:
        return self.event_parts.get(id(event), (-1, None))[0]

    def start_part_of_event(self, event: IncidentEvent) -> int | None:
        return self.event_parts.get(id(event), (-1, None))[1]

    def on_predictions(self, samples: SampleBatch, batch: PredictionBatch) -> None:
        if self.model is not None and batch.model_name != self.model:
            return
        if batch.model_version != self._last_version:  # a new activation starts counting at 0
            self.offsets[batch.model_version] = len(self.sample_parts)
            self._last_version = batch.model_version
        for i, sample_id in enumerate(batch.sample_ids):
            self.predicted[sample_id] = (str(batch.outputs(i).get("label")), batch.model_version)
            self.sample_parts.append(int(sample_id) if sample_id.isdigit() else -1)

    def on_label(self, label: Label) -> None:
        found = self.predicted.pop(label.sample_id, None)
        if found is not None:
            guess, version = found
            self.joined += 1
            self.hits.append(guess == str(label.value))
            if label.sample_id.isdigit():
                self.by_part[int(label.sample_id)] = (str(label.value), guess)
                self.version_of[int(label.sample_id)] = version

    def scores_between(self, first: int, last: int, version: str | None = None) -> dict[str, Any] | None:
        """Every figure over the labelled parts first <= part < last (with ``version``, only
        the parts that version answered for); None without any."""
        pairs = [tp for part, tp in self.by_part.items() if first <= part < last
                 and (version is None or self.version_of.get(part) == version)]
        return score_pairs(pairs)

    def versions_between(self, first: int, last: int) -> dict[str, int]:
        """How many labelled parts first <= part < last each version answered for."""
        return dict(Counter(self.version_of.get(part, "unknown") for part in self.by_part
                            if first <= part < last))

    @property
    def accuracy(self) -> float | None:
        return sum(self.hits) / len(self.hits) if self.hits else None


def score_pairs(pairs: list[tuple[str, str]]) -> dict[str, Any] | None:
    known = [(t, p) for t, p in pairs if t in COSTS.classes and p in COSTS.classes]
    if not known:
        return None
    return scores_from_labels([t for t, _ in known], [p for _, p in known], COSTS)


def headline(scores: dict[str, Any] | None) -> dict[str, Any]:
    """The five figures the demo summary gives for a stretch of parts."""
    if scores is None:
        return {"accuracy": None, "balanced_accuracy": None, "nok_recall": None, "nok_precision": None,
                "cost_per_part": None, "labelled_parts": 0}
    nok = scores["per_class"]["NOK"]
    return {"accuracy": scores["accuracy"], "balanced_accuracy": scores["balanced_accuracy"],
            "nok_recall": nok["recall"], "nok_precision": nok["precision"],
            "cost_per_part": scores["cost_per_part"], "labelled_parts": scores["n"]}


def curves(by_part: dict[int, tuple[str, str]], window: int = WINDOW, step: int = 5) -> list[dict[str, Any]]:
    """Figures over a sliding window of labelled parts: one point every ``step`` parts, placed
    at the window's last part."""
    parts = sorted(by_part)
    out = []
    for i in range(0, max(0, len(parts) - window + 1), step):
        chunk = parts[i:i + window]
        s = headline(score_pairs([by_part[p] for p in chunk]))
        out.append({"part": chunk[-1], **s})
    return out
