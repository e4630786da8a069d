"""Does CBPE spend only its share of the false-alarm budget? An offline count on the drift-free
rows of every development line of bench/drift_cases.py (not the seventh to ninth held-out sets).

Per line it builds the bundle as drift_cases does, takes the model's confidence on the same
50,000 drift-free rows drift_cases replays, and counts the CBPE window's alarm and warning
episodes against the bundle's own levels (an episode ends below 80% of the warning level, the
monitor's hysteresis; the off-delay is left out, so it counts at least as many as replay). It
also counts them with the confidence's long-run inflation estimated with the inputs' time scale
as the least bandwidth (``slow=span``, as the label CUSUM's is): a variant tried 2026-12-02
and not kept (same alarms, one more warning). ``python -m bench.cbpe_budget`` prints one JSON
line per line and a total."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from agent.monitor.budget import Budget
from agent.monitor.laws import long_run_inflation, slowest
from bench import drift_cases as dc
from bench.line_shapes import Shape
from bench.line_streams import line_for

HELD_OUT_NOW = ("seventh", "eighth", "ninth", "thirteenth")  # sets still judging the monitor: not studied


def development_lines() -> list[tuple[Shape, int]]:
    """The lines of every set drift_cases counts as development data now."""
    return [line for title, lines in dc.groups() if not any(t in title for t in HELD_OUT_NOW)
            for line in lines]


def episodes(drop: np.ndarray, warn: float, alarm: float) -> tuple[int, int]:
    alarms = warnings = state = 0
    for d in drop.tolist():
        if state < 2 and d > alarm:
            alarms, state = alarms + 1, 2
        elif state == 0 and d > warn:
            warnings, state = warnings + 1, 1
        elif state and d < warn * 0.8:
            state = 0
    return alarms, warnings


def one(shape: Shape, seed: int) -> dict[str, object]:
    line = line_for(shape, seed)
    with tempfile.TemporaryDirectory() as tmp:
        _, runtime = dc.build(line, seed, Path(tmp))
        mon = json.loads((Path(tmp) / "bundle" / "manifest.json").read_text())["monitoring"]
    cb, window, every = mon["cbpe"], int(mon["window"]), int(mon["every"])
    history = line.stream("clean", dc.HISTORY, 0, seed=seed * 1000 + 1)
    held = runtime.predict(history.x[dc.FIT:].astype(np.float32)).scores.max(axis=1).astype(np.float64)
    lag = min(window, max(2, len(held) // 5))
    old = float(long_run_inflation(held, max_lag=lag, safe=True)[0])
    slow = float(long_run_inflation(held, max_lag=lag, safe=True, slow=slowest(history.x))[0])
    clean = line.stream("clean", 50_000, dc.CHANGE, seed=seed * 1000 + 10 + dc.CASES.index("clean"))
    conf = runtime.predict(clean.x.astype(np.float32)).scores.max(axis=1).astype(np.float64)
    sums = np.concatenate(([0.0], np.cumsum(conf)))
    ends = np.arange(window, len(conf) + 1)
    ends = ends[ends % every == 0]
    drop = cb["reference_expected_accuracy"] - (sums[ends] - sums[ends - window]) / window
    k = float(np.sqrt(slow / old))
    return {"line": shape.name, "seed": seed, "inflation": round(old, 3), "inflation_slow": round(slow, 3),
            "alarms_warnings": episodes(drop, cb["warn_drop"], cb["alarm_drop"]),
            "alarms_warnings_slow": episodes(drop, cb["warn_drop"] * k, cb["alarm_drop"] * k),
            "share": mon["budget_split"]["shares"]["cbpe"] if "budget_split" in mon else None}


def main() -> None:
    rows = [one(shape, seed) for shape, seed in development_lines()]
    for row in rows:
        print(json.dumps(row))
    weeks = len(rows) * 50_000 / Budget().samples_per_week
    share = next((r["share"] for r in rows if r["share"] is not None), 0.25)
    budget = Budget()
    print(json.dumps({"bench": "cbpe_budget", "lines": len(rows), "weeks_at_1_hz": round(weeks, 2),
                      "alarms": sum(r["alarms_warnings"][0] for r in rows),  # type: ignore[index]
                      "warnings": sum(r["alarms_warnings"][1] for r in rows),  # type: ignore[index]
                      "alarms_slow": sum(r["alarms_warnings_slow"][0] for r in rows),  # type: ignore[index]
                      "warnings_slow": sum(r["alarms_warnings_slow"][1] for r in rows),  # type: ignore[index]
                      "share": share, "expected_alarms": round(weeks * budget.alarms_per_week * share, 2),
                      "expected_warnings": round(weeks * budget.warnings_per_week * share, 2)}))


if __name__ == "__main__":
    main()
