"""Streaming drift detectors, vectorised over features and batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.monitor.cusum import Cusum, Detection

__all__ = ["Binner", "Cusum", "Detection", "RingMean", "WindowCategorical", "WindowPSI",
           "pad_proportions"]

EPS = 1e-4  # floor for bin proportions: an empty bin must not make PSI infinite


class Binner:
    """Per-feature bins for a batch, x (n, k) -> (n, k) in [0, e], with one searchsorted call.

    Bin 0 is below the training minimum, bin e above the training maximum (the overflow bins).
    Each feature's edges are mapped onto [0, 1] and shifted by 2 per feature, so all features'
    edges form one sorted array. Edges of features with fewer distinct deciles are +inf padded.
    """

    def __init__(self, edges: np.ndarray) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        k = edges.shape[0]
        valid = edges < np.inf
        count = valid.sum(axis=1)
        self.lo = edges[:, 0].copy()
        self.top = edges[np.arange(k), count - 1]
        span = self.top - self.lo
        self.span = np.where(span > 0, span, 1.0)
        norm = (edges - self.lo[:, None]) / self.span[:, None] + 2.0 * np.arange(k)[:, None]
        self.flat = norm[valid]  # row by row: ascending
        self.first = np.concatenate([[0], np.cumsum(count)[:-1]])  # each feature's first edge
        self.offset = 2.0 * np.arange(k)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        u = x - self.lo
        u /= self.span
        np.maximum(u, -0.5, out=u)  # minimum and maximum in place: a fraction of np.clip's cost
        np.minimum(u, 1.5, out=u)
        u += self.offset
        idx = np.searchsorted(self.flat, u, side="right")
        idx -= self.first
        # a value equal to the training maximum belongs to the last inner bin, not the overflow
        idx -= x == self.top
        return np.asarray(idx)


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
        self._binner = Binner(self.edges)

    def update(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed a batch; return (sample index, PSI per feature) at each evaluation point."""
        return self._update_bins(self._binner(x).astype(np.int16))

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
        first = self.seen % self.window
        # a run of slots without wrapping around is a slice (the usual case: no index arrays)
        slots: slice | np.ndarray = slice(first, first + n) if first + n <= self.window else (
            (self.seen + np.arange(n)) % self.window)
        flat = self._counts.reshape(-1)
        size = k * self.nbins
        if self.seen >= self.window:  # the oldest samples leave the window
            flat -= np.bincount((self._ring[slots] + self._offsets).reshape(-1), minlength=size)
        elif self.seen + n > self.window:
            old = self._ring[self._ring_slots(n)[self.window - self.seen:]]
            flat -= np.bincount((old + self._offsets).reshape(-1), minlength=size)
        self._ring[slots] = bins
        flat += np.bincount((bins + self._offsets).reshape(-1), minlength=size)
        self.seen += n

    def _ring_slots(self, n: int) -> np.ndarray:
        return np.asarray((self.seen + np.arange(n)) % self.window)

    def psi(self) -> np.ndarray:
        filled = min(self.seen, self.window)
        cur = np.maximum(self._counts / max(1, filled), EPS)
        return np.asarray(((cur - self.ref) * np.log(cur / self.ref)).sum(axis=1))

    def state(self) -> dict[str, Any]:
        return {"ring": self._ring, "counts": self._counts, "seen": self.seen, "last": self.last}

    def restore(self, s: dict[str, Any]) -> None:
        self._ring[:] = s["ring"]
        self._counts[:] = s["counts"]
        self.seen = int(s["seen"])
        self.last = np.asarray(s["last"], dtype=np.float64)


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
        super().__init__(np.tile(np.arange(width, dtype=np.float64), (k, 1)),
                         np.ones((k, width + 1)), window, every)
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
        first = self.seen % self.window
        # a run of slots without wrapping around is a slice (the usual case: no index arrays)
        slots: slice | np.ndarray = slice(first, first + n) if first + n <= self.window else (
            (self.seen + np.arange(n)) % self.window)
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


def pad_proportions(rows: list[list[float]]) -> np.ndarray:
    """Category proportions (each ending with the 'unseen' slot) into one array."""
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width))
    for i, r in enumerate(rows):
        out[i, : len(r) - 1] = r[:-1]
        out[i, width - 1] = r[-1]  # 'unseen' is always the last slot
    return out
