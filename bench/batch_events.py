"""The monitor's condition events, incidents and notifications at batch 1, 64 and mixed sizes.

    PYTHONPATH=$PWD python -m bench.batch_events [rows]     (200,000 rows: about 2 minutes)

One seeded stream of a 20-input model (inputs correlated through a common factor) with a drift
every few hundred samples: 50-400 samples long, of one to three inputs, a mean shift, a larger
spread or a broken correlation. An operator acknowledges the open incident every 4,000 samples
(batches are cut there, so the acknowledgement falls at the same sample whatever the batching).
Batch 1, sample by sample, is the truth; for each batching, how many condition events,
incident events and notifications differ from it (a missing or extra one counts once; "in any
field" compares every field but the wall-clock emission time, floats to 10 digits; a
notification's "what": incident, action, level, sample, detector and input). Not part
of `make bench`: the sample-by-sample replay alone takes a minute or two.
"""

from __future__ import annotations

import difflib
import math
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from agent.monitor.monitor import ModelMonitor
from bench.common import emit
from tests.helpers.synthetic import logistic_scores, manifest_for, replay_with_incidents

INPUTS, ACK_EVERY = 20, 4000
MIXED = (1, 7, 33, 64, 500)


def drifting(rows: int, seed: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, stream)."""
    rng = np.random.default_rng(seed)

    def sample(m: int) -> np.ndarray:
        return 0.6 * rng.normal(size=(m, 1)) + 0.8 * rng.normal(size=(m, INPUTS))

    train, x = sample(5000), sample(rows)
    at = 3000
    while at < rows - 500:
        seg = slice(at, min(rows, at + int(rng.integers(50, 400))))
        cols = rng.choice(INPUTS, size=int(rng.integers(1, 4)), replace=False)
        kind = rng.integers(0, 3)
        if kind == 0:
            x[seg, cols] += rng.choice([-1, 1]) * rng.uniform(0.3, 1.5)
        elif kind == 1:
            x[seg, cols] *= rng.uniform(1.3, 2.5)
        else:
            x[seg, cols] = rng.normal(size=(seg.stop - seg.start, len(cols)))
        at = seg.stop + int(rng.integers(200, 900))
    return train, x


def spans(rows: int, sizes: tuple[int, ...]) -> Iterator[tuple[int, int]]:
    at, turn = 0, 0
    while at < rows:
        stop = min(rows, at + sizes[turn % len(sizes)], (at // ACK_EVERY + 1) * ACK_EVERY)
        yield at, stop
        at, turn = stop, turn + 1


def plain(doc: dict[str, Any]) -> tuple[Any, ...]:
    def value(v: Any) -> Any:
        if isinstance(v, float):
            return "nan" if math.isnan(v) else float(f"{v:.10g}")
        return tuple(v) if isinstance(v, list) else v
    return tuple((k, value(v)) for k, v in doc.items() if k != "emitted")


def replay(manifest: Any, x: np.ndarray, sizes: tuple[int, ...]) -> (
        tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], float]):
    monitor = ModelMonitor(manifest)
    started = time.perf_counter()
    events, incidents = replay_with_incidents(monitor, x, spans(len(x), sizes), ACK_EVERY)
    seconds = time.perf_counter() - started
    return [plain(e.as_dict()) for e in events], [plain(e.as_dict()) for e in incidents], seconds


def differing(got: list[Any], want: list[Any]) -> int:
    match = difflib.SequenceMatcher(None, got, want, autojunk=False)
    return sum(max(i2 - i1, j2 - j1) for op, i1, i2, j1, j2 in match.get_opcodes() if op != "equal")


def core(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    fields = ("index", "kind", "detector", "feature", "level")
    return [tuple(v for k, v in e if k in fields) for e in events]


def sent(incidents: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    return [e for e in incidents if dict(e)["notify"]]


def what(incidents: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Which incident, what happened, at which sample, raised by which detector on which input."""
    fields = ("incident_id", "action", "level", "index", "kind", "detector", "feature")
    return [tuple(v for k, v in e if k in fields) for e in incidents]


def main(argv: list[str]) -> None:
    rows = int(argv[0]) if argv else 200_000
    train, x = drifting(rows)
    manifest = manifest_for(train, logistic_scores(train))
    truth = replay(manifest, x, (1,))
    for name, sizes in (("1", (1,)), ("64", (64,)), ("mixed 1,7,33,64,500", MIXED)):
        events, incidents, seconds = truth if sizes == (1,) else replay(manifest, x, sizes)
        emit(bench="batch_events", rows=rows, inputs=INPUTS, batch=name,
             condition_events=len(events),
             condition_events_differing=differing(core(events), core(truth[0])),
             condition_events_differing_in_any_field=differing(events, truth[0]),
             incident_events=len(incidents), incident_events_differing=differing(incidents, truth[1]),
             notifications=len(sent(incidents)),
             notifications_differing=differing(sent(incidents), sent(truth[1])),
             notifications_differing_in_what=differing(what(sent(incidents)), what(sent(truth[1]))),
             seconds=round(seconds, 1))


if __name__ == "__main__":
    main(sys.argv[1:])
