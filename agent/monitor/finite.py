"""The monitor's guard against values that are not finite numbers.

The ingest layer drops NaN and infinite readings before they reach a batch, but the monitor is
also fed by replay, by tests and by whoever embeds it. One NaN in a CUSUM bank makes every later
sum NaN (numpy's maximum propagates it) and an infinity latches an alarm for ever, so neither
may reach a detector. Dropping the row from the batch would shift every sample index the label
join and the incident start times rely on. So a missing value is no evidence either way:

* every CUSUM sum that depends on it keeps its value for that row (its increment is zero): the
  value's own mean CUSUM, and for a row with any numeric input missing the PCA, residual, scale
  and tie columns (they combine all inputs), and the scale and tie columns of the next row too
  (they predict from the previous row); a missing score, the score's CUSUM;
* the PSI window skips the row (its evaluation points count the rows it took);
* the arithmetic before those steps sees the column's last finite value (the reference mean
  before the first), so nothing computes with NaN; the CBPE confidence ring takes that held
  value too, a window mean that one row moves by a five-hundredth.

Each missing value is counted per column and shown in the metrics (``non_finite_values``), so a
tag that sends NaN is visible, not silently frozen."""

from __future__ import annotations

import math

import numpy as np

from agent.monitor.detectors import WindowPSI


class FiniteGuard:
    """Holds the last finite value of every column of one kind of array (the numeric inputs,
    the score, the confidence) and replaces non-finite values by it, in place."""

    def __init__(self, start: np.ndarray) -> None:
        self.hold = np.where(np.isfinite(start), start, 0.0).astype(np.float64)
        self.replaced = np.zeros(len(self.hold), dtype=np.int64)

    def clean(self, values: np.ndarray) -> np.ndarray | None:
        """Replace, in ``values`` (rows x columns, float64, owned by the caller), every
        non-finite value; return where the values were finite, or None when all were (the
        common batch: one isfinite and one copy of a row)."""
        if math.isfinite(values.sum()):  # (a sum is finite only if every value is; one pass)
            self.hold = values[-1].copy()
            return None
        ok: np.ndarray = np.asarray(np.isfinite(values))
        if ok.all():  # finite values whose sum overflowed
            self.hold = values[-1].copy()
            return None
        self.replaced += (~ok).sum(axis=0)
        for i in np.flatnonzero(~ok.all(axis=1)):  # rare: row by row, in sample order
            if i:  # the rows before are finite by now
                self.hold = values[i - 1].copy()
            bad = ~ok[i]
            values[i, bad] = self.hold[bad]
        self.hold = values[-1].copy()
        return ok

    def column(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """One column (a score, a confidence): a float64 copy, cleaned, and where it was finite."""
        two = np.array(values, dtype=np.float64).reshape(-1, 1)
        return two[:, 0], self.clean(two)


def psi_whole_rows(psi: WindowPSI, rows: np.ndarray, ok_x: np.ndarray | None, ok_score: np.ndarray | None,
                   first: int) -> list[tuple[int, np.ndarray]]:
    """Feed the PSI window the rows with every value present; (sample index, PSI) as
    ``WindowPSI.update`` gives them, its indices mapped back to the samples'."""
    seen = psi.seen  # the window's own count: behind the samples' once a row was skipped
    if ok_x is None and ok_score is None:
        return [(first + index - seen, value) for index, value in psi.update(rows)]
    kept = np.ones(len(rows), dtype=bool)
    if ok_x is not None:
        kept &= ok_x.all(axis=1)
    if ok_score is not None:
        kept &= ok_score[:, 0]
    at = np.flatnonzero(kept)
    return [(first + int(at[index - seen]), value) for index, value in psi.update(rows[at])]


class MissingCells:
    """Which cells of a CUSUM bank batch carry no evidence (see the module's docstring). The
    bank: k numeric inputs, the score, then from ``k + 1`` the columns that combine every input
    (PCA, residuals, scale, tie), of which those from ``after`` predict from the row before."""

    def __init__(self, k: int, after: int) -> None:
        self.k, self.after = k, after
        self.prev_missing = False  # the last row fed had an input missing

    def mask(self, ok_x: np.ndarray | None, ok_score: np.ndarray | None, shape: tuple[int, ...]) -> (
            np.ndarray | None):
        if ok_x is None and ok_score is None and not self.prev_missing:
            return None
        n, k = shape[0], self.k
        missing = np.zeros(shape, dtype=bool)
        row: np.ndarray = np.zeros(n, dtype=bool)
        if ok_x is not None:
            missing[:, :k] = ~ok_x
            row = np.asarray(~ok_x.all(axis=1))
        if ok_score is not None:
            missing[:, k] = ~ok_score[:, 0]
        missing[:, k + 1:] |= row[:, None]
        before = np.concatenate(([self.prev_missing], row[:-1]))
        missing[:, self.after:] |= before[:, None]
        self.prev_missing = bool(row[-1])
        return missing
