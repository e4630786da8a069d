"""The monitor's condition events and the incidents and notifications built from them do not
depend on how the samples were batched: batch 1 (sample by sample) is the truth, batches of 64
and of mixed sizes must give the same events, field for field."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from agent.models.bundle import Manifest
from agent.monitor.monitor import ModelMonitor
from tests.helpers.synthetic import logistic_scores, manifest_for, replay_with_incidents

FEATURES, SAMPLES = 8, 15_000  # and a setpoint after them: one value in every reference row
SETPOINT = 180.1
ACK_EVERY = 2000  # an operator acknowledges the open incident every ACK_EVERY samples
MIXED = (1, 7, 33, 64, 500)


def bursts(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Training rows and a stream of short drifts of every kind a bank watches (one input's
    mean, three inputs together, a spread, a broken correlation) and moves of the setpoint,
    each about as far after the previous one as a condition's off-delay (the window, 500
    samples): a return to normal and the next warning of the same condition then often fall
    into one batch."""
    rng = np.random.default_rng(seed)

    def rows(m: int) -> np.ndarray:
        x = 0.6 * rng.normal(size=(m, 1)) + 0.8 * rng.normal(size=(m, FEATURES))
        return np.column_stack([x, np.full(m, SETPOINT)])

    train, x = rows(5000), rows(SAMPLES)
    at, burst = 1500, 0
    while at + 40 < SAMPLES:
        col, seg = burst % FEATURES, slice(at, at + 40)
        if burst % 4 == 0:
            x[seg, col] += 2.0
        elif burst % 4 == 1:
            x[seg, [col, (col + 1) % FEATURES, (col + 2) % FEATURES]] += 1.2
        elif burst % 4 == 2:
            x[seg, col] *= 3.0
        else:
            x[seg, col] = 1.5 * rng.normal(size=40)
        at += 40 + 480 + (burst * 7) % 90
        burst += 1
    for move in range(8):
        start = 4000 + move * (530 + 9 * move)
        x[start:start + 30, FEATURES] = 185.0
    return train, x


def spans(sizes: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    """Batches of the sizes in turn, also cut where the operator acknowledges (an operator's
    action falls between batches: at the same sample for every batching)."""
    at, turn = 0, 0
    while at < SAMPLES:
        stop = min(SAMPLES, at + sizes[turn % len(sizes)], (at // ACK_EVERY + 1) * ACK_EVERY)
        yield at, stop
        at, turn = stop, turn + 1


def plain(doc: dict[str, Any]) -> dict[str, Any]:
    """An event's fields without its wall-clock emission time; floats to 10 digits (a sum over
    a batch is rounded differently from the same sum sample by sample)."""
    def value(v: Any) -> Any:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else float(f"{v:.10g}")
        return v
    return {k: value(v) for k, v in doc.items() if k != "emitted"}


Replayed = tuple[list[dict[str, Any]], list[dict[str, Any]]]  # condition and incident events


def replay(x: np.ndarray, monitor: ModelMonitor, sizes: tuple[int, ...]) -> Replayed:
    events, incidents = replay_with_incidents(monitor, x, spans(sizes), ACK_EVERY)
    return [plain(e.as_dict()) for e in events], [plain(e.as_dict()) for e in incidents]


@pytest.fixture(scope="module", params=[None, 64], ids=["window-500", "window-64"])
def stream(request: pytest.FixtureRequest) -> tuple[Manifest, np.ndarray]:
    """The bundle's own window (500 samples), and one of 64: its timestamp ring (8 windows,
    512 samples) is then about one batch of 500 long, and the start time of a change found
    late in such a batch used to fall out of it while sample by sample it was still known."""
    train, x = bursts(5)
    manifest = manifest_for(train, logistic_scores(train))
    if request.param is not None:
        doc = manifest.model_dump()
        doc["monitoring"]["window"] = request.param
        manifest = Manifest.model_validate(doc)
    return manifest, x


@pytest.fixture(scope="module")
def truth(stream: tuple[Manifest, np.ndarray]) -> Replayed:
    manifest, x = stream
    return replay(x, ModelMonitor(manifest), (1,))


def test_the_stream_raises_and_clears_conditions_of_every_detector_and_notifies(
        stream: tuple[Manifest, np.ndarray], truth: Replayed) -> None:
    events, incidents = truth
    kinds = {(e["detector"], e["level"]) for e in events}
    for detector in ("cusum", "resid_cusum", "scale_cusum", "pooled_cusum", "psi"):
        assert {(detector, "warning"), (detector, "alarm"), (detector, "ok")} <= kinds
    assert {("constant", "alarm"), ("constant", "ok")} <= kinds  # (a setpoint has no warning)
    assert all(e["start_timestamp"] != "nan" for e in events if e["start_index"] is not None)
    if ModelMonitor(stream[0]).window == 500:  # (a window of 64 keeps its PSI up: one incident)
        assert sum(e["notify"] for e in incidents) >= 10
        assert {"raised", "escalated", "closed", "acknowledged"} <= {e["action"] for e in incidents}


@pytest.mark.parametrize("sizes", [(64,), MIXED], ids=["64", "mixed"])
def test_condition_events_and_notifications_do_not_depend_on_the_batch_size(
        stream: tuple[Manifest, np.ndarray], truth: Replayed, sizes: tuple[int, ...]) -> None:
    manifest, x = stream
    events, incidents = replay(x, ModelMonitor(manifest), sizes)
    want_events, want_incidents = truth
    core = [(e["index"], e["kind"], e["detector"], e["feature"], e["level"]) for e in events]
    assert core == [(e["index"], e["kind"], e["detector"], e["feature"], e["level"]) for e in want_events]
    assert events == want_events  # scores, thresholds, named streams, start indices and times too
    assert [e for e in incidents if e["notify"]] == [e for e in want_incidents if e["notify"]]
    assert incidents == want_incidents  # what goes to the alarm topic and the outbox
