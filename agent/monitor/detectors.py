"""Streaming drift detectors, vectorised over features and batches."""

from __future__ import annotations

from typing import Any

import numpy as np

from agent.monitor.cusum import Cusum, Detection

__all__ = ["Binner", "Cusum", "Detection", "RingMean", "WindowCategorical", "WindowPSI",
           "pad_proportions"]

EPS = 1e-4  # floor for bin proportions: an empty bin must not make PSI infinite


class Binner:
    """Per-feature bins for a batch, x (n, k) -> (n, k) cells ``column * nbins + bin``: the cells
    are what the window's counts are indexed by, so counting needs no per-column offset.

    Bin 0 is below the training minimum; the overflow bin, above the training maximum, is the
    one after the feature's last inner bin (features with fewer distinct deciles have fewer
    bins: their edges are +inf padded). A value's bin is the number of its feature's edges at
    or below it, as the profile counts (agent.monitor.profile.bin_counts): exact, compared in
    the values' own scale. All values of a block of rows are compared with edge j of their
    features in one call, against the edges laid out once per value position: branch-free
    vector comparisons, less than half the cost of mapping every value into one sorted array for
    searchsorted's binary searches (10 against 25 us for 64 rows of 21 streams).
    """

    ROWS = 64  # rows per comparison block (the usual batch); longer batches go block by block

    def __init__(self, edges: np.ndarray) -> None:
        edges = np.asarray(edges, dtype=np.float64)
        k, e = edges.shape
        self.nbins = e + 1
        valid = edges < np.inf
        count = valid.sum(axis=1)
        upper = np.where(valid, edges, np.nan)  # padding: no value is >= NaN, not even +inf
        last = (np.arange(k), count - 1)
        # a value equal to the training maximum belongs to the last inner bin, not the overflow:
        # it must not count the last edge, any larger value must
        upper[last] = np.nextafter(upper[last], np.inf)
        self._edges = np.tile(upper.T, (1, self.ROWS))  # [j, row * k + col]: edge j of col
        self._offsets = np.tile(np.arange(k) * self.nbins, self.ROWS)
        self._at_or_above = np.empty(self._edges.shape, dtype=bool)  # scratch, reused
        self._count_type = np.uint8 if e < 256 else np.int64  # bytes add up fastest

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, k = x.shape
        if k != self._edges.shape[1] // self.ROWS:  # the flat layout would not notice
            raise ValueError(f"{k} columns for the edges of {self._edges.shape[1] // self.ROWS}")
        cells = np.empty((n, k), dtype=np.int64)
        for start in range(0, n, self.ROWS):
            block = x[start:start + self.ROWS].reshape(1, -1)
            size = block.shape[1]
            above = self._at_or_above[:, :size]
            np.greater_equal(block, self._edges[:, :size], out=above)  # NaN: no edge, bin 0
            bins = np.add.reduce(above.view(np.uint8), axis=0, dtype=self._count_type)
            np.add(bins, self._offsets[:size], out=cells[start:start + self.ROWS].reshape(-1))
        return cells


class WindowPSI:
    """PSI of the last ``window`` samples per feature, from a ring buffer of cells (column *
    nbins + bin).

    Per sample: O(1) count updates; per evaluation: O(bins). Evaluated every ``every`` samples
    at fixed sample counts, so the result does not depend on how samples were batched.
    """

    TABLE_LIMIT = 1 << 19  # entries (4 MB) of the PSI term table; beyond it terms are computed

    def __init__(self, edges: np.ndarray, ref_props: np.ndarray, window: int, every: int = 16) -> None:
        self.edges = np.asarray(edges, dtype=np.float64)
        k, e = self.edges.shape
        self.nbins = e + 1
        self.ref = np.maximum(np.asarray(ref_props, dtype=np.float64), EPS)
        self.ref /= self.ref.sum(axis=1, keepdims=True)
        self.window = window
        self.every = every
        self._offsets = np.arange(k) * self.nbins
        self._ring = np.tile(self._offsets, (window, 1))  # cells, as the counts index them
        self._counts = np.zeros((k, self.nbins), dtype=np.int64)
        self.seen = 0
        self.last = np.zeros(k)
        self._binner: Binner | None = None  # built when first needed (never by WindowCategorical)
        self._terms: np.ndarray | None = None  # PSI term per cell and count, built when first needed
        self._term_rows = np.arange(self._counts.size) * (window + 1)  # each cell's first term

    def update(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Feed a batch; return (sample index, PSI per feature) at each evaluation point."""
        if self._binner is None:
            self._binner = Binner(self.edges)
        return self._update_cells(self._binner(x))

    def _update_cells(self, cells: np.ndarray) -> list[tuple[int, np.ndarray]]:
        out: list[tuple[int, np.ndarray]] = []
        pos = 0
        n = len(cells)
        while pos < n:
            # advance to the next evaluation boundary (or the end of the batch)
            to_boundary = self.every - (self.seen % self.every)
            step = min(to_boundary, n - pos)
            self._push(cells[pos:pos + step])
            pos += step
            if self.seen % self.every == 0 and self.seen >= self.window:
                self.last = self.psi()
                out.append((self.seen - 1, self.last))
        return out

    def _push(self, cells: np.ndarray) -> None:
        n = len(cells)
        first = self.seen % self.window
        # a run of slots without wrapping around is a slice (the usual case: no index arrays)
        slots: slice | np.ndarray = slice(first, first + n) if first + n <= self.window else (
            (self.seen + np.arange(n)) % self.window)
        flat = self._counts.reshape(-1)
        size = flat.size
        if self.seen >= self.window:  # the oldest samples leave the window
            flat -= np.bincount(self._ring[slots].reshape(-1), minlength=size)
        elif self.seen + n > self.window:
            old = self._ring[self._ring_slots(n)[self.window - self.seen:]]
            flat -= np.bincount(old.reshape(-1), minlength=size)
        self._ring[slots] = cells
        flat += np.bincount(cells.reshape(-1), minlength=size)
        self.seen += n

    def _ring_slots(self, n: int) -> np.ndarray:
        return np.asarray((self.seen + np.arange(n)) % self.window)

    def psi(self) -> np.ndarray:
        filled = min(self.seen, self.window)
        if filled == self.window and self._counts.size * (self.window + 1) <= self.TABLE_LIMIT:
            # a full window's count takes one of window + 1 values: look its term up
            if self._terms is None:
                self._terms = self._term_table()
            terms = self._terms[self._counts.reshape(-1) + self._term_rows]
            # add.reduce is what .sum calls, without its Python layers
            return np.asarray(np.add.reduce(terms.reshape(self._counts.shape), axis=1))
        return np.asarray(_psi_terms(self._counts / max(1, filled), self.ref).sum(axis=1))

    def _term_table(self) -> np.ndarray:
        """Every PSI term a full window can have, cell by cell and count by count: the same
        operations on the same values as computing them, so the same bits, without the
        division and logarithm per evaluation."""
        props = np.arange(self.window + 1) / self.window
        return _psi_terms(props[None, :], self.ref.reshape(-1, 1)).reshape(-1)

    def state(self) -> dict[str, Any]:
        # saved as bins per column (int16), as before the ring held cells
        return {"ring": (self._ring - self._offsets).astype(np.int16), "counts": self._counts,
                "seen": self.seen, "last": self.last}

    def restore(self, s: dict[str, Any]) -> None:
        self._ring[:] = np.asarray(s["ring"], dtype=np.int64) + self._offsets
        self._counts[:] = s["counts"]
        self.seen = int(s["seen"])
        self.last = np.asarray(s["last"], dtype=np.float64)


def _psi_terms(props: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(p - q) ln(p / q) per bin, the window's proportions p floored at EPS."""
    cur = np.maximum(props, EPS)
    return np.asarray((cur - ref) * np.log(cur / ref))


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

    def _cells(self, x: np.ndarray) -> np.ndarray:
        match = x[:, :, None] == self.codes[None, :, :]
        found = match.any(axis=2)
        return np.asarray(np.where(found, match.argmax(axis=2), self.nbins - 1) + self._offsets)

    def update(self, x: np.ndarray) -> list[tuple[int, np.ndarray]]:
        return self._update_cells(self._cells(x))

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
        slots = self._slots(len(values))
        # unfilled slots hold zeros, so subtracting what a slot held is always right
        self.total += float(values.sum()) - float(self._ring[slots].sum())
        self._ring[slots] = values
        self._advance(len(values))

    def running_totals(self, values: np.ndarray) -> np.ndarray:
        """Feed ``values`` (no more than a window of them); the window's total after each one,
        from one pass over what enters and what leaves (a window mean at every evaluation
        point of a batch without a feed per point)."""
        n = len(values)
        if n > self.window:
            raise ValueError(f"{n} values for a window of {self.window}: feed them in parts")
        slots = self._slots(n)
        totals = np.subtract(values, self._ring[slots])  # unfilled slots hold zeros
        np.add.accumulate(totals, out=totals)
        totals += self.total
        self._ring[slots] = values
        self.total = float(totals[-1]) if n else self.total
        self._advance(n)
        return np.asarray(totals)

    def _slots(self, n: int) -> slice | np.ndarray:
        """The ring slots of the next ``n`` values (at most a window): a run without a wrap
        is a slice (the usual case: no index arrays)."""
        first = self.seen % self.window
        if first + n <= self.window:
            return slice(first, first + n)
        return np.asarray((self.seen + np.arange(n)) % self.window)

    def _advance(self, n: int) -> None:
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
