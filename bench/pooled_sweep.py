"""A study, not part of the monitor: does the pooled mean CUSUM's design (k, the soft threshold
b, its share of the budget) keep it from the oracle on the mean shift? (2026-12-03.)

For every development line (every set of bench.drift_cases but the twelfth and thirteenth
held-out sets) the bundle is built through the CLI as there, and the streams the pooled CUSUM
watches (agent/monitor/pooled.py `transform`: each tag decorrelated from the others, in long-run
standard deviations) are computed for the reference rows, the mean-shift stream and the 50,000
drift-free rows. Each design is then rebuilt offline with the monitor's own functions (its law
from `simulate_tail` and `threshold` on the reference's `prewhitened_correlation`, the replay
check on the reference rows) and run on the same streams through the monitor's own CUSUM
bank. At the shipped design (k = 0.25, b = ln(2m) / 2k, the pooled share) it reproduces the
monitor's pooled delays row for row.

    python -m bench.pooled_sweep           # the designs below, 165 lines (about 15 min on 2 cores)

Measured (2026-12-03; docs/monitoring.md, "The pooled CUSUM's design is at its optimum"): the
designs differ by at most 5% in delay (geometric mean over the lines every design finds); the
doubled share is the fastest (0.95) and raises 4 + 1 false alarms against 3 + 1.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from agent.monitor.cusum import POOLED, Cusum, Pool
from agent.monitor.pooled import design_b, prewhitened_correlation, simulate_tail, threshold, transform
from agent.monitor.replaycheck import allowed_alarms
from bench import drift_cases as dc
from bench.common import emit

WEEK = 604_800.0  # rows of a week at 1 Hz
WARN_TO_ALARM = 5.0  # warnings per week over alarms per week, as the default budget
# (k, b over the shipped design's ln(2m) / 2k, share over the shipped share)
DESIGNS = ((0.25, 1.0, 1.0), (0.25, 0.6, 1.0), (0.25, 1.4, 1.0), (0.25, 2.0, 1.0), (0.2, 1.0, 1.0),
           (0.3, 1.0, 1.0), (0.35, 1.0, 1.0), (0.2, 1.4, 1.0), (0.3, 1.4, 1.0), (0.25, 1.0, 2.0))


def streams(shape: dc.Shape, seed: int) -> dict[str, Any]:
    """The pooled CUSUM's streams of one line (reference, mean shift, drift-free) and its spec."""
    line = dc.line_for(shape, seed)
    with tempfile.TemporaryDirectory(prefix="pooled-sweep-") as tmp:
        work = Path(tmp)
        _, _, history = dc.build(line, seed, work)
        manifest = next(p for p in (work / "bundle").rglob("*.json") if '"monitoring"' in p.read_text())
        mon = json.loads(manifest.read_text())["monitoring"]
    spec, cols = mon["pooled"], mon["data"]["columns"]
    matrix, centre = transform(spec)
    shift = line.stream("mean_shift", dc.CHANGE + dc.HORIZON, dc.CHANGE,
                        seed=seed * 1000 + 10 + dc.CASES.index("mean_shift"))
    clean = line.stream("clean", 50_000, dc.CHANGE, seed=seed * 1000 + 10 + dc.CASES.index("clean"))

    def z(x: np.ndarray) -> np.ndarray:  # the float32 values the line's samples can take
        return np.asarray(x.astype(np.float32).astype(np.float64)[:, cols] @ matrix - centre)

    return {"ref": z(history), "shift": z(shift.x), "clean": z(clean.x), "clip": np.array(spec["clip"]),
            "rate": mon["budget_split"]["alarms_per_week_per_stream"]["pooled_cusum"]}


def run_pool(z: np.ndarray, k: float, b: float, h: float, h_warn: float,
             clip: np.ndarray) -> tuple[list[int], int]:
    """(rows of the alarms, warnings) of the pooled statistic on ``z``, through the monitor's own
    bank (agent.monitor.cusum), its streams' own levels out of reach."""
    streams = z.shape[1]
    never = np.full(streams, np.inf)
    bank = Cusum(np.zeros(streams), np.ones(streams), k, never, False, never, clip=clip,
                 pool=Pool(0, streams, b, h, h_warn))
    pooled = [d for d in bank.update(z) if d.column == POOLED]
    return ([d.index for d in pooled if d.level == "alarm"],
            sum(d.level == "warning" for d in pooled))


def evaluate(data: dict[str, Any], k: float, b_over: float, share_over: float) -> dict[str, Any]:
    ref = data["ref"]
    rate = float(data["rate"]) * share_over
    b = b_over * design_b(ref.shape[1], k)
    peaks, horizon = simulate_tail(prewhitened_correlation(ref), k, b, len(ref))
    h = threshold(WEEK / rate, peaks, horizon, k)
    h_warn = threshold(WEEK / (WARN_TO_ALARM * rate), peaks, horizon, k)
    for _ in range(20):  # the replay check, as pooled_section's
        if len(run_pool(ref, k, b, h, h_warn, data["clip"])[0]) <= allowed_alarms(len(ref), rate, WEEK):
            break
        h, h_warn = h * 1.25, h_warn * 1.25
    fired, _ = run_pool(data["shift"], k, b, h, h_warn, data["clip"])
    after = [i for i in fired if i >= dc.CHANGE]
    clean, clean_warnings = run_pool(data["clean"], k, b, h, h_warn, data["clip"])
    return {"delay": after[0] - dc.CHANGE if after else None,
            "false_before": sum(i < dc.CHANGE for i in fired), "false_clean": len(clean),
            "warnings_clean": clean_warnings}


def summary(results: dict[tuple[float, float, float], dict[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    shipped = results[DESIGNS[0]]
    rows = []
    for design, lines in results.items():
        both = [n for n, r in lines.items() if r["delay"] and shipped[n]["delay"]]
        ratio = math.exp(statistics.mean(math.log(lines[n]["delay"] / shipped[n]["delay"]) for n in both))
        by_shape: dict[str, list[float]] = defaultdict(list)
        for name, r in lines.items():
            by_shape[name.rsplit("/", 1)[0]].append(math.inf if r["delay"] is None else r["delay"])
        rows.append({"k": design[0], "b_over_shipped": design[1], "share_over_shipped": design[2],
                     "delay_over_shipped": round(ratio, 3),
                     "median": statistics.median(math.inf if r["delay"] is None else r["delay"]
                                                 for r in lines.values()),
                     "shapes_median_over_90": sum(statistics.median(v) > 90 for v in by_shape.values()),
                     "shapes": len(by_shape), "missed": sum(r["delay"] is None for r in lines.values()),
                     "false_before": sum(r["false_before"] for r in lines.values()),
                     "false_clean": sum(r["false_clean"] for r in lines.values()),
                     "warnings_clean": sum(r["warnings_clean"] for r in lines.values())})
    return rows


def main() -> None:
    if sys.argv[1:]:
        raise SystemExit("usage: python -m bench.pooled_sweep")
    lines = [(shape, seed) for title, group in dc.groups()
             if "twelfth" not in title and "thirteenth" not in title for shape, seed in group]
    results: dict[tuple[float, float, float], dict[str, dict[str, Any]]] = defaultdict(dict)
    for shape, seed in lines:
        data = streams(shape, seed)
        for design in DESIGNS:
            results[design][f"{shape.name}/{seed}"] = evaluate(data, *design)
    emit(bench="pooled_sweep", lines=len(lines), designs=summary(results))


if __name__ == "__main__":
    main()
