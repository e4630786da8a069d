"""A study for the next detector of a mean shift, not part of the monitor: per-tag CUSUMs of the
VAR(2) innovations (bench/oracle.py's machinery, told only "one tag moves by 0.6 of its standard
deviation", either sign), each at the whole budget over 2m streams (Bonferroni), no knowledge
of which tags move or when. Where it beats the monitor, the gap to the oracle is in the
process's dynamics (what the others and the tag's own past predict), which the monitor's
per-tag streams (levels, decorrelated levels) do not use; where it does not, the gap is the
price of not knowing the direction.

    python -m bench.pertag_innovations held-6,loop-16   # a text naming one set of drift_cases
"""

from __future__ import annotations

import json
import statistics
import sys

import numpy as np

from bench import drift_cases as dc
from bench import oracle
from bench.line_shapes import Shape
from bench.line_streams import line_for

STUDIED = ("dev-8, seeds 100-104", "held-12", "held-6", "fresh-10", "loop-9", "eighth-9", "loop-16", "var-10")


def lines_of(name: str) -> list[tuple[Shape, int]]:
    """The lines of the drift_cases set whose title names ``name`` (one set)."""
    found = [lines for title, lines in dc.groups() if name in title]
    if len(found) != 1:
        raise SystemExit(f"{name!r}: not one set of bench.drift_cases (found {len(found)})")
    return found[0]


DESIGN = 0.6  # the shift each tag's CUSUM is designed for, in the tag's standard deviations


def one(shape: Shape, seed: int) -> tuple[int | None, int | None, int]:
    """(the oracle's delay, the per-tag innovation CUSUMs' delay, their alarms before the change)."""
    line = line_for(shape, seed)
    history = line.stream("clean", dc.HISTORY, 0, seed=seed * 1000 + 1)
    stream_seed = seed * 1000 + 10 + dc.CASES.index("mean_shift")
    stream = line.stream("mean_shift", dc.CHANGE + dc.HORIZON, dc.CHANGE, seed=stream_seed)
    clean = line.stream("clean", dc.CHANGE + dc.HORIZON, dc.CHANGE, seed=stream_seed)
    known = oracle.fit(history.x, dc.FIT, oracle.known_shift(stream.x, clean.x, dc.CHANGE))
    best, _ = oracle.delay(known, stream.x, dc.CHANGE)
    sd = history.x[:dc.FIT].std(axis=0)
    tags = history.x.shape[1]
    first: int | None = None
    false = 0
    for j in np.flatnonzero(sd > 1e-9 * (np.abs(history.x).mean(axis=0) + 1)).tolist():
        for sign in (1.0, -1.0):
            delta = np.zeros(tags)
            delta[j] = sign * DESIGN * sd[j]
            fired = oracle.fit(history.x, dc.FIT, delta, arl=oracle.WEEK_AT_1HZ * 2 * tags).alarms(stream.x)
            false += sum(1 for i in fired if i < dc.CHANGE)
            after = [i for i in fired if i >= dc.CHANGE]
            if after and (first is None or after[0] < first):
                first = after[0]
    return best, None if first is None else first - dc.CHANGE, false


def main() -> None:
    for name in (sys.argv[1].split(",") if len(sys.argv) > 1 else STUDIED):
        runs = [one(shape, seed) for shape, seed in lines_of(name)]
        found = [r[1] for r in runs if r[1] is not None]
        print(json.dumps({"bench": "pertag_innovations", "line": name, "oracle": [r[0] for r in runs],
                          "per_tag": [r[1] for r in runs], "false_alarms": sum(r[2] for r in runs),
                          "median": statistics.median(found) if found else None}))


if __name__ == "__main__":
    main()
