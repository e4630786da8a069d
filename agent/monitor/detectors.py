"""Streaming drift detectors, vectorised over features and batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-4  # floor for bin proportions: an empty bin must not make PSI infinite


@dataclass(frozen=True)
class Detection:
    """A detector crossed a threshold at sample ``index`` (0-based, counted since start)."""

    index: int
    column: int  # feature column (0 for single-stream detectors)
    score: float
    start_index: int  # estimated start of the change
    level: str = "alarm"  # "warning" or "alarm"


def bin_index(x: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Per-feature bins for a batch: x (n, k), edges (k, e) -> (n, k) in [0, e].

    Bin 0 is below the training minimum, bin e above the training maximum (the overflow bins).
    Edges of features with fewer distinct deciles are padded with +inf.
    """
    idx = (x[:, :, None] >= edges[None, :, :]).sum(axis=2)
    # a value equal to the training maximum belongs to the last inner bin, not the overflow
    top = edges[np.arange(edges.shape[0]), (edges < np.inf).sum(axis=1) - 1]
    return np.asarray(np.where(x == top, idx - 1, idx))


class WindowPSI:
    """PSI of the last ``window`` samples per feature, from a ring buffer of bin indices.

    Per sample: O(1) count updates; per evaluation: O(bins). Evaluated every ``every`` samples
    at fixed sample counts, so the result does not depend on how samples were batched.
    """

    def __init__(self, edges: np.ndarray, ref_props: np.ndarray, window: int, every: int = 16) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        k, e = self.edges.shape
        self.nbins = e + 1
        self.ref = np.maximum(np.asarray(ref_props, dtype=np.float64), EPS)
        self.ref /= self.ref.sum(axis=1, keepdims=True)
        self.window = window
        self.every = every
        self._ring = np.zeros((window, k), dtype=np.int16)
        self._counts = np.zeros((k, self.nbins), dtype=np.int64)
        self._offsets = np.arange(k) * self.nbins
        self.seen = 0
        self.last = np.zeros(k)

    def update(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed a batch; return (sample index, PSI per feature) at each evaluation point."""
        return self._update_bins(bin_index(x, self.edges).astype(np.int16))

    def _update_bins(self, bins: np.ndarray) -> list[tuple[int, np.ndarray]]:
        out: list[tuple[int, np.ndarray]] = []
        pos = 0
        n = len(bins)
        while pos < n:
            # advance to the next evaluation boundary (or the end of the batch)
            to_boundary = self.every - (self.seen % self.every)
            step = min(to_boundary, n - pos)
            self._push(bins[pos:pos + step])
            pos += step
            if self.seen % self.every == 0 and self.seen >= self.window:
                self.last = self.psi()
                out.append((self.seen - 1, self.last))
        return out

    def _push(self, bins: np.ndarray) -> None:
        n = len(bins)
        k = bins.shape[1]
        slots = (self.seen + np.arange(n)) % self.window
        if self.seen >= self.window:
            old = self._ring[slots]
            np.subtract.at(self._counts.reshape(-1), (old + self._offsets).reshape(-1), 1)
        elif self.seen + n > self.window:
            full = slots[self.window - self.seen:]
            old = self._ring[full]
            np.subtract.at(self._counts.reshape(-1), (old + self._offsets).reshape(-1), 1)
        self._ring[slots] = bins
        self._counts.reshape(-1)[:] += np.bincount((bins + self._offsets).reshape(-1),
                                                    minlength=k * self.nbins)
        self.seen += n

    def psi(self) -> np.ndarray:
        filled = min(self.seen, self.window)
        cur = np.maximum(self._counts / max(1, filled), EPS)
        return np.asarray(((cur - self.ref) * np.log(cur / self.ref)).sum(axis=1))

    def contributions(self) -> np.ndarray:
        return self.last

    def state(self) -> dict[str, Any]:
        return {"ring": self._ring, "counts": self._counts, "seen": self.seen, "last": self.last}

    def restore(self, s: dict[str, Any]) -> None:
        self._ring[:] = s["ring"]
        self._counts[:] = s["counts"]
        self.seen = int(s["seen"])
        self.last = np.asarray(s["last"], dtype=np.float64)


class Cusum:
    """Standardised CUSUM per column: S+ catches upward, S- downward shifts (two-sided), or
    only S+ when ``one_sided``. Exact per sample using the cumulative-sum form of the Lindley
    recursion, so a batch costs a few numpy calls whatever its length."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, k: float, h: float | np.ndarray,
                 one_sided: bool = False, h_warn: float | np.ndarray | None = None) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.where(np.asarray(std, dtype=np.float64) > 0, std, 1.0)
        self.k = k
        self.h = np.broadcast_to(np.asarray(h, dtype=np.float64), self.mean.shape).copy()
        warn = self.h * 0.5 if h_warn is None else h_warn
        self.h_warn = np.broadcast_to(np.asarray(warn, dtype=np.float64), self.mean.shape).copy()
        self.warned = np.zeros(self.mean.shape, dtype=bool)  # a warning is raised once per excursion
        self.one_sided = one_sided
        cols = self.mean.shape[0]
        self.pos = np.zeros(cols)
        self.neg = np.zeros(cols)
        self.pos_start = np.zeros(cols, dtype=np.int64)  # last index where S+ was 0
        self.neg_start = np.zeros(cols, dtype=np.int64)
        self.seen = 0

    @property
    def score(self) -> np.ndarray:
        """max(S+, S-) per column, in units of the threshold's scale."""
        return np.maximum(self.pos, self.neg) if not self.one_sided else self.pos.copy()

    def update(self, x: np.ndarray, threshold: np.ndarray | None = None) -> list[Detection]:
        """Feed a batch (n, cols); return detections at ``threshold`` (default h). A column
        that fires restarts from zero, as after an alarm is raised."""
        h = self.h if threshold is None else threshold
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.std
        detections: list[Detection] = []
        while len(z):
            s_pos, s_neg = self._sums(z)
            over = (s_pos > h) | (s_neg > h)
            fired = over.any(axis=1)
            end = int(np.flatnonzero(fired)[0]) + 1 if fired.any() else len(z)
            detections += self._warnings(s_pos[:end], s_neg[:end])
            if not fired.any():
                self._record_zero(s_pos, s_neg, self.seen)
                self.pos, self.neg = s_pos[-1].copy(), s_neg[-1].copy()
                self.seen += len(z)
                break
            row = end - 1
            cols = np.flatnonzero(over[row])
            self._record_zero(s_pos[: row + 1], s_neg[: row + 1], self.seen)
            for col in cols.tolist():
                upward = s_pos[row, col] > h[col]
                began = int(self.pos_start[col] if upward else self.neg_start[col])
                detections.append(Detection(self.seen + row, col,
                                            float(max(s_pos[row, col], s_neg[row, col])), began))
            self.pos, self.neg = s_pos[row].copy(), s_neg[row].copy()
            self.pos[cols] = 0.0
            self.neg[cols] = 0.0
            self.warned[cols] = False
            self.pos_start[cols] = self.neg_start[cols] = self.seen + row + 1
            self.seen += row + 1
            z = z[row + 1:]
        return detections

    def _warnings(self, s_pos: np.ndarray, s_neg: np.ndarray) -> list[Detection]:
        """First crossing of the warning level per column, until the sum returns to zero."""
        if not len(s_pos):
            return []
        score = np.maximum(s_pos, s_neg)
        out: list[Detection] = []
        above = score > self.h_warn
        for col in np.flatnonzero(above.any(axis=0) | self.warned).tolist():
            column = score[:, col]
            row = 0
            while row < len(column):
                if not self.warned[col]:
                    hits = np.flatnonzero(column[row:] > self.h_warn[col])
                    if not len(hits):
                        break
                    row += int(hits[0])
                    self.warned[col] = True
                    out.append(Detection(self.seen + row, col, float(column[row]), -1, "warning"))
                zeros = np.flatnonzero(column[row:] <= 0)
                if not len(zeros):
                    break
                row += int(zeros[0])
                self.warned[col] = False
        return out

    def _sums(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """S+ and S- after each row: S_t = C_t - min(-S_0, min_{j<=t} C_j), C the running sum."""
        up = np.cumsum(z - self.k, axis=0)
        s_pos = up - np.minimum(np.minimum.accumulate(up, axis=0), -self.pos)
        if self.one_sided:
            return s_pos, np.zeros_like(s_pos)
        down = np.cumsum(-z - self.k, axis=0)
        return s_pos, down - np.minimum(np.minimum.accumulate(down, axis=0), -self.neg)

    def _record_zero(self, s_pos: np.ndarray, s_neg: np.ndarray, base: int) -> None:
        n = len(s_pos)
        if not n:
            return
        idx = np.arange(n)[:, None]
        last_pos = np.where(s_pos <= 0, idx, -1).max(axis=0)
        last_neg = np.where(s_neg <= 0, idx, -1).max(axis=0)
        self.pos_start = np.where(last_pos >= 0, base + last_pos + 1, self.pos_start)
        self.neg_start = np.where(last_neg >= 0, base + last_neg + 1, self.neg_start)

    def state(self) -> dict[str, Any]:
        return {"pos": self.pos, "neg": self.neg, "pos_start": self.pos_start,
                "neg_start": self.neg_start, "seen": self.seen, "warned": self.warned}

    def restore(self, s: dict[str, Any]) -> None:
        self.pos = np.asarray(s["pos"], dtype=np.float64).copy()
        self.neg = np.asarray(s["neg"], dtype=np.float64).copy()
        self.pos_start = np.asarray(s["pos_start"], dtype=np.int64).copy()
        self.neg_start = np.asarray(s["neg_start"], dtype=np.int64).copy()
        self.seen = int(s["seen"])
        self.warned = np.asarray(s["warned"], dtype=bool).copy()


class WindowCategorical(WindowPSI):
    """Category counts over a window: Jensen-Shannon distance to training proportions, and
    the share of categories never seen in training (they land in the last, 'unseen', slot)."""

    def __init__(self, categories: list[np.ndarray], ref_props: np.ndarray, window: int,
                 every: int = 16) -> None:
        k = len(categories)
        width = max(len(c) for c in categories)
        self.codes = np.full((k, width), np.nan)
        for i, c in enumerate(categories):
            self.codes[i, :len(c)] = np.sort(np.asarray(c, dtype=np.float64))
        self.sizes = np.array([len(c) for c in categories])
        super().__init__(np.zeros((k, width)), np.zeros((k, width + 1)), window, every)
        self.ref = np.asarray(ref_props, dtype=np.float64)  # exact: JS needs no smoothing
        self.unseen_rate = np.zeros(k)

    def _bin(self, x: np.ndarray) -> np.ndarray:
        match = x[:, :, None] == self.codes[None, :, :]
        found = match.any(axis=2)
        return np.asarray(np.where(found, match.argmax(axis=2), self.nbins - 1), dtype=np.int16)

    def update(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        return self._update_bins(self._bin(x))

    def psi(self) -> np.ndarray:
        """Jensen-Shannon distance (base 2, in [0, 1]) per feature."""
        filled = max(1, min(self.seen, self.window))
        cur = self._counts / filled
        self.unseen_rate = cur[:, -1].copy()
        mid = (cur + self.ref) / 2
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(cur > 0, cur * np.log2(cur / mid), 0.0).sum(axis=1)
            b = np.where(self.ref > 0, self.ref * np.log2(self.ref / mid), 0.0).sum(axis=1)
        return np.asarray(np.sqrt(np.maximum(0.0, (a + b) / 2)))


class RingMean:
    """Mean of the last ``window`` values of one stream (confidence, error bits), O(1) per
    sample by keeping a running sum over a ring buffer."""

    def __init__(self, window: int) -> None:
        self.window = window
        self._ring = np.zeros(window)
        self.total = 0.0
        self.seen = 0

    def update(self, values: np.ndarray) -> None:
        values = np.asarray(values, dtype=np.float64)
        if len(values) > self.window:  # only the newest window's worth can stay
            self.seen += len(values) - self.window
            values = values[-self.window:]
        n = len(values)
        slots = (self.seen + np.arange(n)) % self.window
        # unfilled slots hold zeros, so subtracting what a slot held is always right
        self.total += float(values.sum()) - float(self._ring[slots].sum())
        self._ring[slots] = values
        before = self.seen
        self.seen += n
        if before // 4096 != self.seen // 4096:  # re-sum now and then: no drift of rounding error
            self.total = float(self._ring.sum())

    @property
    def count(self) -> int:
        return min(self.seen, self.window)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else float("nan")

    def state(self) -> dict[str, Any]:
        return {"ring": self._ring, "total": self.total, "seen": self.seen}

    def restore(self, s: dict[str, Any]) -> None:
        self._ring[:] = s["ring"]
        self.total = float(s["total"])
        self.seen = int(s["seen"])
