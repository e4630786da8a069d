"""The physics of the simulated machine: process values per part and a hidden OK/NOK relation.

Pure and seeded, so the demo, the tests and the training history all see the same line.
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


@dataclass(frozen=True)
class DriftStep:
    kind: str  # "resin": inputs shift; "concept": the OK/NOK relation changes
    at_s: float


def parse_drift(spec: str | None) -> list[DriftStep]:
    """'resin@600,concept@1200' -> steps at those simulated seconds."""
    steps: list[DriftStep] = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(resin|concept)@(\d+(?:\.\d+)?)", part)
        if not match:
            raise ValueError(f"--drift: '{part}' is not KIND@SECONDS with KIND resin or concept")
        steps.append(DriftStep(match.group(1), float(match.group(2))))
    return sorted(steps, key=lambda s: s.at_s)


@dataclass
class LineProcess:
    seed: int = 7
    drift: list[DriftStep] = field(default_factory=list)
    nok_noise: float = 0.35

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self._ar = np.zeros(len(NOMINAL))  # slow wander shared by consecutive parts

    def active(self, kind: str, t: float) -> bool:
        return any(s.kind == kind and t >= s.at_s for s in self.drift)

    def part(self, t: float) -> tuple[dict[str, float], bool]:
        """Process values of the part made at simulated time t, and whether it is OK."""
        # AR(1) wander with unit stationary variance: consecutive parts are alike, as on a
        # real machine (0.866 = sqrt(1 - 0.5^2))
        self._ar = 0.5 * self._ar + 0.866 * self._rng.standard_normal(len(NOMINAL))
        z = self._ar.copy()
        if self.active("resin", t):
            # new resin melts differently: the operators raise barrel temps and pressure
            z[0:3] += 1.6
            z[3] += 1.2
            z[7] -= 0.8
        values = {tag: nom + spread * z[i] for i, (tag, (nom, spread)) in enumerate(NOMINAL.items())}
        zt = float(np.mean(z[0:3]))
        zp, zm, zc = float(z[3]), float(z[4]), float(z[7])
        if self.active("concept", t):
            risk = -1.1 * zt + 0.9 * zm + 0.8 * zc - 0.3 * zp
        else:
            risk = 0.9 * zt + 0.8 * zp - 0.7 * zc + 0.3 * zm
        risk += self.nok_noise * float(self._rng.standard_normal())
        ok = risk < 1.3
        return {k: round(v, 3) for k, v in values.items()}, ok


def history(n: int, seed: int = 1, cycle_s: float = 30.0) -> tuple[np.ndarray, list[str], np.ndarray]:
    """n parts of drift-free history: (X, feature names, labels 'OK'/'NOK')."""
    proc = LineProcess(seed=seed)
    rows, labels = [], []
    for i in range(n):
        values, ok = proc.part(i * cycle_s)
        rows.append([values[t] for t in PROCESS_TAGS])
        labels.append("OK" if ok else "NOK")
    return np.asarray(rows), list(PROCESS_TAGS), np.asarray(labels)

