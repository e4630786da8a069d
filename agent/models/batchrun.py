"""One inference batch through the versions the lifecycle runs: computed off the event loop,
judged on it; and the words of a watch's verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from agent.errors import AgentError
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.inference.runtimes import RuntimeOutput
from agent.models.comparison import Comparison


@dataclass
class Computed:
    """What the models made of one batch, computed off the event loop (``compute``) and
    judged on it (``settle``): the lifecycle's state changes only in the event loop."""

    model: LoadedModel
    result: tuple[PredictionBatch, RuntimeOutput] | None
    error: AgentError | None
    elapsed: float
    incumbent: LoadedModel | None
    incumbent_result: tuple[PredictionBatch, RuntimeOutput] | AgentError | None
    incumbent_s: float
    shadow: LoadedModel | None
    shadow_result: tuple[PredictionBatch, RuntimeOutput] | AgentError | None
    shadow_s: float


def timed(model: LoadedModel | None, chunk: SampleBatch) -> tuple[
        tuple[PredictionBatch, RuntimeOutput] | AgentError | None, float]:
    if model is None:
        return None, 0.0
    # the CPU time of this thread, not the wall clock: with several models (and the event loop)
    # in one process a batch can wait milliseconds for the GIL, and that wait says nothing about
    # the version; the latency judge compares what each version costs to run
    started = time.thread_time()
    try:
        return model.predict(chunk), time.thread_time() - started
    except AgentError as exc:
        return exc, time.thread_time() - started


def watch_reason(cmp: Comparison, cost_margin: float, mae_margin: float, significance: float) -> str:
    f = cmp.figures(significance)
    if cmp.costs is None:
        return (f"MAE {f['candidate_mae']:.3g} vs {f['active_mae']:.3g} of the previous version on "
                f"{f['labelled']} labelled outcomes (margin {mae_margin:g} of it)")
    test = f["paired"] or {}
    return (f"expected cost {f['candidate_cost_per_part']:.3g} vs {f['active_cost_per_part']:.3g} per "
            f"part of the previous version on {f['labelled']} labelled outcomes (margin "
            f"{cost_margin:g}, paired bootstrap p={test.get('p_higher')}; recall "
            f"{f['candidate_recall']} vs {f['active_recall']}, accuracy {f['candidate_accuracy']} "
            f"vs {f['active_accuracy']})")


def decision(batch: PredictionBatch) -> Any:
    return batch.label_idx if batch.label_idx is not None else batch.score
