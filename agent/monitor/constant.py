"""Inputs that held one value in every reference row: a setpoint, a recipe number, a sensor that
was stuck while the reference was recorded.

They have no spread, so no statistical detector can watch them (a drift measured in standard
deviations of nothing is a division by zero: the pooled CUSUM's law failed on one before this
watch existed). The calibration takes them out of the numeric detectors and names them here;
on the line, any other value is a plain fact rather than a statistical finding: the model never
saw that input at anything but its reference value, so its outputs there are extrapolation. The
condition is raised at the first sample off the value and ends once the input has been back on
it for the monitor's off-delay, sample by sample whatever the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.monitor.alarms import MonitorEvent

if TYPE_CHECKING:
    from agent.monitor.monitor import ModelMonitor

# a value read back through float32 (the model's input type, an OPC UA Float) differs from the
# reference's float64 by up to 6e-8 of itself; anything closer than this counts as the same
RELATIVE_TOLERANCE = 1e-6


def constant_columns(x: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """Which of the ``numeric`` columns of the reference rows ``x`` hold one value throughout."""
    if not len(x):
        return np.zeros(len(numeric), dtype=bool)
    return np.asarray(np.ptp(x[:, numeric], axis=0) == 0)


def constant_section(x: np.ndarray, columns: np.ndarray) -> dict[str, Any]:
    """The manifest's ``monitoring.constant``: the columns, their one value, the rule."""
    return {"columns": columns.tolist(), "values": x[0, columns].astype(np.float64).tolist(),
            "rule": "one value in every reference row: no statistical detector; any other value "
                    f"(beyond {RELATIVE_TOLERANCE:g} of it) raises an alarm at once, ended after "
                    "the off-delay back on the value"}


@dataclass
class Transition:
    column: int  # position within the watched columns
    index: int  # sample index
    raised: bool  # True: the input left its value; False: it has been back for the off-delay
    value: float  # the input's value at that sample


class ConstantWatch:
    """Watches each constant input for any other value (see the module's docstring)."""

    def __init__(self, spec: dict[str, Any], quiet: int) -> None:
        self.columns = np.asarray(spec["columns"], dtype=np.int64)
        self.values = np.asarray(spec["values"], dtype=np.float64)
        self.tolerance = RELATIVE_TOLERANCE * np.maximum(1.0, np.abs(self.values))
        self.quiet = max(1, int(quiet))
        self.up = np.zeros(len(self.columns), dtype=bool)
        self.back = np.zeros(len(self.columns), dtype=np.int64)  # samples back on the value

    def update(self, x_all: np.ndarray, first: int) -> list[Transition]:
        """The raw inputs of a batch whose first sample has index ``first``."""
        off = ~(np.abs(x_all[:, self.columns] - self.values) <= self.tolerance)  # NaN is off too
        if not off.any() and not self.up.any():
            return []
        out: list[Transition] = []
        for j in np.flatnonzero(off.any(axis=0) | self.up).tolist():
            out += self._column(j, off[:, j], x_all[:, self.columns[j]], first)
        out.sort(key=lambda t: t.index)
        return out

    def _column(self, j: int, off: np.ndarray, values: np.ndarray, first: int) -> list[Transition]:
        """One input's transitions within the batch, sample by sample (the batch's runs of
        samples off and on the value, a few of them, not a loop over every sample)."""
        out: list[Transition] = []
        pos, n = 0, len(off)
        while pos < n:
            if off[pos]:
                if not self.up[j]:
                    self.up[j] = True
                    out.append(Transition(j, first + pos, True, float(values[pos])))
                self.back[j] = 0
                on = np.flatnonzero(~off[pos:])
                pos = n if not len(on) else pos + int(on[0])
                continue
            # a run of samples back on the value, up to the next one off it
            nxt = np.flatnonzero(off[pos:])
            end = n if not len(nxt) else pos + int(nxt[0])
            if self.up[j] and self.back[j] + (end - pos) >= self.quiet:
                at = pos + (self.quiet - int(self.back[j])) - 1
                self.up[j] = False
                out.append(Transition(j, first + at, False, float(values[at])))
            self.back[j] += end - pos
            pos = end
        return out

    def state(self) -> dict[str, Any]:
        return {"up": self.up, "back": self.back}

    def restore(self, s: dict[str, Any]) -> None:
        up, back = np.asarray(s["up"], dtype=bool), np.asarray(s["back"], dtype=np.int64)
        if up.shape != self.up.shape or back.shape != self.back.shape:
            raise ValueError("constant inputs: a snapshot of another number of inputs")
        self.up[:], self.back[:] = up, back


def constant_events(monitor: ModelMonitor, moves: list[Transition]) -> list[MonitorEvent]:
    """Conditions of the watch: an input left its one reference value (an alarm at once: the
    model never saw another; its score is the value, its threshold the reference value), or has
    been back on it for the off-delay."""
    assert monitor.constant is not None
    events: list[MonitorEvent] = []
    for t in moves:
        name, ref = monitor.constant_names[t.column], float(monitor.constant.values[t.column])
        if t.raised:
            events += monitor._raise(monitor._event("data_drift", "constant", name, "alarm", t.value,
                                                    ref, t.index, [name], t.index))
        else:
            events += monitor._normal(("data_drift", "constant", name), t.index, ref)
    return events
