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
    level: str = "alarm"  # "warning", "alarm", or "quiet" (back to normal for long enough)


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
        slots = (self.seen + np.arange(n)) % self.window
        flat = self._counts.reshape(-1)
        size = k * self.nbins
        if self.seen >= self.window:  # the oldest samples leave the window
            flat -= np.bincount((self._ring[slots] + self._offsets).reshape(-1), minlength=size)
        elif self.seen + n > self.window:
            old = self._ring[slots[self.window - self.seen:]]
            flat -= np.bincount((old + self._offsets).reshape(-1), minlength=size)
        self._ring[slots] = bins
        flat += np.bincount((bins + self._offsets).reshape(-1), minlength=size)
        self.seen += n

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


class Cusum:
    """Standardised CUSUM per column: an upward sum S+ for every column and a downward sum S-
    for the two-sided ones. Both live side by side in one array, so a batch costs a dozen numpy
    calls whatever its length and width; exact per sample through the cumulative-sum form of
    the Lindley recursion, S_t = C_t - min(-S_0, min_{j<=t} C_j).

    With ``clip``, a standardized value beyond +-clip (per column, in the CUSUM's standard
    deviations) counts as +-clip before k is subtracted.

    With ``quiet`` set, a column that was above its warning level reports a return to normal
    (a Detection of level "quiet") once it has stayed at or below it for ``quiet`` samples:
    the off-delay after which its alarm condition may end."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, k: float | np.ndarray, h: float | np.ndarray,
                 one_sided: bool | np.ndarray = False, h_warn: float | np.ndarray | None = None,
                 quiet: int | None = None, clip: float | np.ndarray | None = None) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        cols = self.mean.shape[0]
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > 0, std, 1.0)
        self.k = np.broadcast_to(np.asarray(k, dtype=np.float64), (cols,)).copy()
        self.h = np.broadcast_to(np.asarray(h, dtype=np.float64), (cols,)).copy()
        warn = self.h * 0.5 if h_warn is None else h_warn
        self.h_warn = np.broadcast_to(np.asarray(warn, dtype=np.float64), (cols,)).copy()
        one = np.broadcast_to(np.asarray(one_sided, dtype=bool), (cols,))
        self._down = np.flatnonzero(~one)  # columns that also get a downward sum
        # side j watches column _col[j]; upward sides first, then the downward ones
        self._col = np.concatenate([np.arange(cols), self._down])
        self._sign = np.concatenate([np.ones(cols), -np.ones(len(self._down))])
        self._h_side, self._warn_side = self.h[self._col], self.h_warn[self._col]
        self._k_side = self.k[self._col]
        self._mean_side = self.mean[self._col]
        self._scale_side = self._sign / self.std[self._col]
        # standardized values beyond +-clip count as +-clip (a Huber-type CUSUM): one outlier
        # of heavy-tailed noise must not be an alarm by itself, nor wipe out the evidence
        self._offset_side = self._mean_side * self._scale_side + self._k_side
        self._clip_side: np.ndarray | None = None
        if clip is not None:  # the bounds shifted by k, which is subtracted first
            bound = np.broadcast_to(np.asarray(clip, dtype=np.float64), (cols,))[self._col]
            self._clip_side = bound - self._k_side
            self._clip_low = -bound - self._k_side
        sides = len(self._col)
        self.s = np.zeros(sides)  # current sums
        self.start = np.zeros(sides, dtype=np.int64)  # index after the sum was last zero
        self.warned = np.zeros(cols, dtype=bool)  # a warning is raised once per excursion
        self.seen = 0
        self.quiet = quiet
        self.last_over = np.full(cols, -1, dtype=np.int64)  # last sample above the warning level
        self.pending = np.zeros(cols, dtype=bool)  # above since, no return to normal reported yet

    @property
    def score(self) -> np.ndarray:
        """max(S+, S-) per column."""
        out = self.s[: len(self.mean)].copy()
        np.maximum.at(out, self._down, self.s[len(self.mean):])
        return out

    def update(self, x: np.ndarray) -> list[Detection]:
        """Feed a batch (n, cols); return warnings, alarms (and with ``quiet``, returns to
        normal). A column that alarms restarts from zero, as after an alarm is raised."""
        x = np.asarray(x, dtype=np.float64)
        z = x[:, self._col]  # a copy (fancy indexing): standardized in place, k subtracted
        z *= self._scale_side
        z -= self._offset_side
        if self._clip_side is not None:  # minimum and maximum: a fraction of np.clip's cost
            np.minimum(z, self._clip_side, out=z)
            np.maximum(z, self._clip_low, out=z)
        out: list[Detection] = []
        while len(z):
            s = np.cumsum(z, axis=0)
            low = np.minimum.accumulate(s, axis=0)
            np.minimum(low, -self.s, out=low)
            s -= low
            over = s > self._h_side
            fired_rows = over.any(axis=1)
            end = int(fired_rows.argmax()) + 1 if fired_rows.any() else len(z)
            above = s[:end] > self._warn_side
            hot = above.any(axis=0)
            out += self._warnings(s[:end], hot)
            if self.quiet is not None:
                out += self._quiet(above, hot)
            self._record_zero(s[:end])
            if end == len(z) and not fired_rows[-1]:
                self.s = s[-1].copy()
                self.seen += len(z)
                break
            row = end - 1
            sides = np.flatnonzero(over[row])
            cols = np.unique(self._col[sides])
            for col in cols.tolist():
                mine = sides[self._col[sides] == col]
                best = int(mine[np.argmax(s[row, mine])])
                out.append(Detection(self.seen + row, col, float(s[row, best]),
                                     int(self.start[best]), "alarm"))
            self.s = s[row].copy()
            reset = np.isin(self._col, cols)
            self.s[reset] = 0.0
            self.start[reset] = self.seen + row + 1
            self.warned[cols] = False
            self.seen += row + 1
            z = z[row + 1:]
        return out

    def _warnings(self, s: np.ndarray, hot: np.ndarray) -> list[Detection]:
        """First crossing of the warning level per column, until its sums return to zero."""
        if not hot.any() and not self.warned.any():  # hot: sides above the warning level
            return []
        cols_n = len(self.mean)
        score = np.zeros((len(s), cols_n))
        np.maximum.at(score.T, self._col, s.T)  # per column: the larger of its sides
        out: list[Detection] = []
        for col in np.flatnonzero(np.isin(np.arange(cols_n), self._col[hot]) | self.warned).tolist():
            column = score[:, col]
            row = 0
            while row < len(column):
                if not self.warned[col]:
                    hits = np.flatnonzero(column[row:] > self.h_warn[col])
                    if not len(hits):
                        break
                    row += int(hits[0])
                    self.warned[col] = True
                    out.append(Detection(self.seen + row, col, float(column[row]),
                                         self._start_at(s, row, col), "warning"))
                zeros = np.flatnonzero(column[row:] <= 0)
                if not len(zeros):
                    break
                row += int(zeros[0])
                self.warned[col] = False
        return out

    def _start_at(self, s: np.ndarray, row: int, col: int) -> int:
        """Where the excursion of ``col``'s larger side at ``row`` began: after its sum was
        last at zero (the CUSUM's estimate of the change point)."""
        sides = np.flatnonzero(self._col == col)
        side = int(sides[np.argmax(s[row, sides])])
        zeros = np.flatnonzero(s[: row + 1, side] <= 0)
        return self.seen + int(zeros[-1]) + 1 if len(zeros) else int(self.start[side])

    def _quiet(self, above: np.ndarray, hot_sides: np.ndarray) -> list[Detection]:
        """Returns to normal: ``quiet`` samples in a row at or below the warning level after the
        column was last above it (exact per sample, whatever the batch size)."""
        assert self.quiet is not None
        cols_n = len(self.mean)
        if not hot_sides.any() and not self.pending.any():
            return []
        col_above = np.zeros((len(above), cols_n), dtype=bool)
        for side in np.flatnonzero(hot_sides).tolist():
            col_above[:, self._col[side]] |= above[:, side]
        last_row = self.seen + len(above) - 1
        out: list[Detection] = []
        for col in np.flatnonzero(col_above.any(axis=0) | self.pending).tolist():
            rows = np.flatnonzero(col_above[:, col]) + self.seen
            points = np.concatenate([[self.last_over[col]], rows]) if self.pending[col] else rows
            gaps = np.flatnonzero(np.diff(points) > self.quiet)
            out += [Detection(int(p) + self.quiet, col, 0.0, -1, "quiet") for p in points[gaps]]
            self.last_over[col] = int(points[-1])
            self.pending[col] = last_row - int(points[-1]) < self.quiet
            if not self.pending[col]:
                out.append(Detection(int(points[-1]) + self.quiet, col, 0.0, -1, "quiet"))
        return out

    def _record_zero(self, s: np.ndarray) -> None:
        zero = s <= 0
        hit = zero.any(axis=0)
        if hit.any():
            last = len(s) - 1 - zero[::-1].argmax(axis=0)
            self.start = np.where(hit, self.seen + last + 1, self.start)

    def state(self) -> dict[str, Any]:
        return {"s": self.s, "start": self.start, "seen": self.seen, "warned": self.warned,
                "last_over": self.last_over, "pending": self.pending}

    def restore(self, st: dict[str, Any]) -> None:
        if np.shape(st["s"]) != self.s.shape:
            raise ValueError(f"a CUSUM of {np.shape(st['s'])} sums, not {self.s.shape}")
        self.s = np.asarray(st["s"], dtype=np.float64).copy()
        self.start = np.asarray(st["start"], dtype=np.int64).copy()
        self.seen = int(st["seen"])
        self.warned = np.asarray(st["warned"], dtype=bool).copy()
        if "last_over" in st:
            self.last_over = np.asarray(st["last_over"], dtype=np.int64).copy()
            self.pending = np.asarray(st["pending"], dtype=bool).copy()


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
