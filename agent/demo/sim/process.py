"""The physics of the simulated machine: process values per part and a hidden OK/NOK relation.

Pure and seeded, so the demo, the tests and the training history all see the same line.

Each part's process values are set point + spread * z, where z is a slow AR(1) wander shared by
consecutive parts (a real machine drifts, it does not jump). Whether a part is NOK depends on a
hidden risk score of z plus noise. The plant changes in two ways (``DRIFT_KINDS``), chosen to
behave as real lines do: a new resin moves the set points but hardly the share of bad parts; a
changed relation keeps the share of bad parts in the usual 10-20% band but changes *which*
parts are bad, so a model that keeps its old rule misses most NOK parts while its accuracy,
with about 85% OK parts, still looks respectable.

The line has a second target: the cycle time of each part (seconds from mould open to mould
open, as the takeout robot measures it), reported some parts later like the QC verdict. It
comes from the mould temperature (a warmer mould cools slower), the screw speed (a faster screw
recovers sooner) and the machine's programmed cycle, plus noise; neither kind of change touches
it or its inputs, so a cycle-time regressor keeps its error through the whole drift story. Its
noise has its own random stream: the process values and the OK/NOK labels are the same with or
without it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

# tag -> (nominal, spread): the plant's normal operating window
NOMINAL: dict[str, tuple[float, float]] = {
    "barrel_temp_1": (220.0, 2.0),
    "barrel_temp_2": (230.0, 2.0),
    "barrel_temp_3": (240.0, 2.0),
    "injection_pressure": (900.0, 25.0),
    "mould_temp": (45.0, 1.5),
    "screw_speed": (120.0, 4.0),
    "cycle_time": (30.0, 0.6),
    "cushion": (5.0, 0.4),
}
PROCESS_TAGS = list(NOMINAL)
COUNTER_TAG = "part_counter"
NOK_THRESHOLD = 1.3  # risk above this makes a NOK part

# the cycle time per part: nominal seconds + weights (seconds per spread) of the tags it follows
CYCLE_NOMINAL_S = 31.0
CYCLE_WEIGHTS: dict[str, float] = {"mould_temp": 0.6, "screw_speed": -0.5, "cycle_time": 0.3}
CYCLE_INPUTS = list(CYCLE_WEIGHTS)
CYCLE_NOISE_S = 0.25
CYCLE_LABEL = "cycle_s"  # the field of the cycle-time label messages

# what each kind of change does, for `edge-agent sim --help` and the docs
DRIFT_KINDS: dict[str, str] = {
    "resin": ("new resin: the operators raise the barrel temperatures by 1.6 spreads, lower the "
              "injection pressure by 1.2 and the cushion grows by 0.6; the inputs shift, the share "
              "of NOK parts moves only a little (about 15% -> 16-17%)"),
    "concept": ("changed relation between process and quality: NOK now comes from low barrel "
                "temperatures, a warm mould and a large cushion (deviations from the current set "
                "point) instead of high temperatures and pressure; the inputs do not change, the "
                "NOK share stays about 15-16%, but different parts are NOK"),
}
DRIFT_HELP = ("changes of the plant, KIND@SECONDS (simulated) separated by commas, e.g. "
              "resin@3600,concept@7200. " + "; ".join(f"{k}: {v}" for k, v in DRIFT_KINDS.items())
              + ". Neither touches the cycle time of a part (mould temperature, screw speed and the "
                "programmed cycle, plus noise), sent with each QC result on plant/line1/cycle as "
                '{"serial": N, "cycle_s": seconds}')

# resin: set-point offsets in spreads, per tag index (barrel temps, pressure, cushion)
RESIN_OFFSET = np.array([1.6, 1.6, 1.6, -1.2, 0.0, 0.0, 0.0, 0.6])


@dataclass(frozen=True)
class DriftStep:
    kind: str  # one of DRIFT_KINDS
    at_s: float


def parse_drift(spec: str | None) -> list[DriftStep]:
    """'resin@600,concept@1200' -> steps at those simulated seconds."""
    steps: list[DriftStep] = []
    kinds = "|".join(DRIFT_KINDS)
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(rf"({kinds})@(\d+(?:\.\d+)?)", part)
        if not match:
            raise ValueError(f"--drift: '{part}' is not KIND@SECONDS with KIND one of "
                             f"{', '.join(DRIFT_KINDS)} (e.g. resin@3600)")
        steps.append(DriftStep(match.group(1), float(match.group(2))))
    return sorted(steps, key=lambda s: s.at_s)


@dataclass
class LineProcess:
    seed: int = 7
    drift: list[DriftStep] = field(default_factory=list)
    nok_noise: float = 0.35

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._cycle_rng = np.random.default_rng([abs(self.seed), 1])  # its own stream, see above
        self._ar = np.zeros(len(NOMINAL))  # slow wander shared by consecutive parts
        self.last_cycle_s = CYCLE_NOMINAL_S

    def active(self, kind: str, t: float) -> bool:
        return any(s.kind == kind and t >= s.at_s for s in self.drift)

    def part(self, t: float) -> tuple[dict[str, float], bool]:
        """Process values of the part made at simulated time t, and whether it is OK."""
        # AR(1) wander with unit stationary variance: consecutive parts are alike, as on a
        # real machine (0.866 = sqrt(1 - 0.5^2))
        self._ar = 0.5 * self._ar + 0.866 * self._rng.standard_normal(len(NOMINAL))
        wander = self._ar
        z = wander + RESIN_OFFSET if self.active("resin", t) else wander.copy()
        values = {tag: nom + spread * z[i] for i, (tag, (nom, spread)) in enumerate(NOMINAL.items())}
        if self.active("concept", t):
            # the new relation lives on deviations from the set point the operators run now
            zt, zp, zm, zc = float(np.mean(wander[0:3])), float(wander[3]), float(wander[4]), float(wander[7])
            risk = -1.0 * zt + 0.8 * zm + 0.7 * zc - 0.3 * zp
        else:
            # the original relation on the raw values: the resin's offsets nearly cancel in it
            zt, zp, zm, zc = float(np.mean(z[0:3])), float(z[3]), float(z[4]), float(z[7])
            risk = 0.9 * zt + 0.8 * zp - 0.7 * zc + 0.3 * zm
        risk += self.nok_noise * float(self._rng.standard_normal())
        ok = risk < NOK_THRESHOLD
        # the cycle time's tags have no resin offset: z is the wander there, before and after
        self.last_cycle_s = round(CYCLE_NOMINAL_S + sum(
            w * float(z[PROCESS_TAGS.index(tag)]) for tag, w in CYCLE_WEIGHTS.items())
            + CYCLE_NOISE_S * float(self._cycle_rng.standard_normal()), 3)
        return {k: round(v, 3) for k, v in values.items()}, ok


def history(n: int, seed: int = 1, cycle_s: float = 30.0,
            drift: list[DriftStep] | None = None) -> tuple[np.ndarray, list[str], np.ndarray]:
    """n parts of history (drift-free unless ``drift`` is given): (X, feature names, labels
    'OK'/'NOK')."""
    x, names, labels, _ = full_history(n, seed, cycle_s, drift)
    return x, names, labels


def full_history(n: int, seed: int = 1, cycle_s: float = 30.0, drift: list[DriftStep] | None = None,
                 ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """As ``history``, plus each part's cycle time in seconds."""
    proc = LineProcess(seed=seed, drift=list(drift or []))
    rows, labels, cycles = [], [], []
    for i in range(n):
        values, ok = proc.part(i * cycle_s)
        rows.append([values[t] for t in PROCESS_TAGS])
        labels.append("OK" if ok else "NOK")
        cycles.append(proc.last_cycle_s)
    return np.asarray(rows), list(PROCESS_TAGS), np.asarray(labels), np.asarray(cycles)
