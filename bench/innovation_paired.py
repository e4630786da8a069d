"""A study, not part of the monitor: the robust blind innovation GLR of bench/agnostic_oracle.py
beside the monitor on the same mean-shift streams, line by line (the monitor through the CLI as
bench/drift_cases.py runs it: bundle built with the defaults, replay of the mean-shift case).

Columns per line: the monitor's delay; the GLR's at the whole budget (one false alarm a week)
and at half of it (one in two weeks: the share it could get beside the monitor's detectors);
and the earlier of the monitor and the GLR at half the budget. The last spends 1.5 budgets,
so it is an upper bound of what a split would give, not a design.

    python -m bench.innovation_paired 0:20     # a slice of bench.drift_cases' sets

Measured (2026-12-03, evening, code at bc09b0b; docs/monitoring.md): on the 195 lines the GLR
alone is 1.10 times the monitor's delay (geometric mean; 91 lines faster, 98 slower), 1.17 at
half the budget; the earlier of the two 0.88 (none slower), shapes with a median over 90 15 ->
10 of 37; false alarms before the change: the monitor 1, the GLR 0.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from agent.monitor import pooled
from bench import agnostic_oracle as ag
from bench import drift_cases as dc
from bench import oracle
from bench.line_shapes import Shape
from bench.line_streams import line_for


def glr_delays(history: np.ndarray, x: np.ndarray) -> dict[str, int | None]:
    """The robust blind GLR's delay on the stream ``x`` at the whole budget and at half."""
    # the VAR is all that is used; the shift given is any (its oracle's h is not)
    known = oracle.fit(history, dc.FIT, history[:dc.FIT].std(axis=0) / 2)
    u, _ = ag.whitened(known, x)
    u_ref, _ = ag.whitened(known, history[dc.FIT - known.order:])
    v = np.clip(u, -pooled.OUTLIER, pooled.OUTLIER)
    out: dict[str, int | None] = {}
    for name, arl in (("glr", oracle.WEEK_AT_1HZ), ("glr_half", 2 * oracle.WEEK_AT_1HZ)):
        h = ag.held_out_level(u_ref, dc.FIT, arl, ag.ROBUST_SHORTEST, pooled.OUTLIER)
        fired = ag.episodes(ag.glr(v, ag.ROBUST_SHORTEST), h) + known.order
        after = fired[fired >= dc.CHANGE]
        out[name] = int(after[0] - dc.CHANGE) if len(after) else None
        out[name + "_before"] = int((fired < dc.CHANGE).sum())
    return out


def one(shape: Shape, seed: int) -> dict[str, object]:
    line = line_for(shape, seed)
    stream = line.stream("mean_shift", dc.CHANGE + dc.HORIZON, dc.CHANGE,
                         seed=seed * 1000 + 10 + dc.CASES.index("mean_shift"))
    with tempfile.TemporaryDirectory(prefix="innovation-paired-") as tmp:
        work = Path(tmp)
        config, _, history = dc.build(line, seed, work)
        stream.write_csv(work / "mean_shift.csv", 1.0, seed=seed)
        every = np.ones(len(stream.x), bool)
        ours = dc.ours(config, work / "mean_shift.csv", stream.change, every, False, work)
    row: dict[str, object] = {"line": f"{shape.name} {seed}", "monitor": ours.delay,
                              "monitor_before": ours.false_alarms, **glr_delays(history, stream.x)}
    both = [d for d in (ours.delay, row["glr_half"]) if isinstance(d, int)]
    row["earlier_half"] = min(both) if both else None
    return row


def main() -> None:
    first, last = (int(i) for i in (sys.argv[1] if len(sys.argv) > 1 else "0:40").split(":"))
    for _, lines in dc.groups()[first:last]:
        for shape, seed in lines:
            print(json.dumps(one(shape, seed)), flush=True)


if __name__ == "__main__":
    main()
