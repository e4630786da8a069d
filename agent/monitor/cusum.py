"""The CUSUM bank: every CUSUM stream of a model side by side in one array, and the pooled
statistic over a block of them (agent.monitor.pooled)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.monitor.scans import prefix_min, prefix_sum

POOLED = -1  # the column of a pooled detection


@dataclass(frozen=True)
class Pool:
    """Columns ``first`` .. ``first + streams - 1`` of a bank (two-sided) pooled into
    P = sum max(0, S - b) over their sides; P above ``h`` is an alarm of column POOLED. The
    pooled columns keep their own levels too. With ``rank_first``, the streams that carry P
    are ordered by the sums of columns ``rank_first`` .. ``rank_first + streams - 1`` at that
    sample (the streams' own mean CUSUMs), else by their pooled sums."""

    first: int
    streams: int
    b: float
    h: float
    h_warn: float
    rank_first: int | None = None


@dataclass(frozen=True)
class Detection:
    """A detector crossed a threshold at sample ``index`` (0-based, counted since start)."""

    index: int
    column: int  # feature column (0 for single-stream detectors)
    score: float
    start_index: int  # estimated start of the change
    level: str = "alarm"  # "warning", "alarm", or "quiet" (back to normal for long enough)
    # a bank's warnings and alarms of a column: max(S+, S-) of every column just after this
    # sample (an alarm's restart included), what a reader fed sample by sample would see there
    column_scores: np.ndarray | None = field(default=None, compare=False, repr=False)


class Cusum:
    """Standardised CUSUM per column: an upward sum S+ for every column and a downward sum S-
    for the two-sided ones. Both live side by side in one array, so a batch costs a dozen numpy
    calls whatever its length and width; exact per sample through the cumulative-sum form of
    the Lindley recursion, S_t = C_t - min(-S_0, min_{j<=t} C_j).

    With ``clip``, a standardized value beyond +-clip (per column, in the CUSUM's standard
    deviations) counts as +-clip before k is subtracted.

    With ``quiet`` set, a column that was above its warning level reports a return to normal
    (a Detection of level "quiet") once it has stayed at or below it for ``quiet`` samples:
    the off-delay after which its alarm condition may end.

    With ``pool``, a block of the bank's columns is also summed into one pooled statistic (Pool):
    its detections have column POOLED; ``pool_streams`` names, per pooled detection index,
    the pooled columns (0-based within the pool) whose sums were above b, largest first."""

    def __init__(self, mean: np.ndarray, std: np.ndarray, k: float | np.ndarray, h: float | np.ndarray,
                 one_sided: bool | np.ndarray = False, h_warn: float | np.ndarray | None = None,
                 quiet: int | None = None, clip: float | np.ndarray | None = None,
                 pool: Pool | None = None) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        cols = self.mean.shape[0]
        std = np.asarray(std, dtype=np.float64)
        self.std = np.where(std > 0, std, 1.0)
        self.k = np.broadcast_to(np.asarray(k, dtype=np.float64), (cols,)).copy()
        self.h = np.broadcast_to(np.asarray(h, dtype=np.float64), (cols,)).copy()
        warn = self.h * 0.5 if h_warn is None else h_warn
        self.h_warn = np.broadcast_to(np.asarray(warn, dtype=np.float64), (cols,)).copy()
        one = np.broadcast_to(np.asarray(one_sided, dtype=bool), (cols,))
        self.pool = pool
        pooled = np.arange(pool.first, pool.first + pool.streams) if pool is not None else np.arange(0)
        if pool is not None and (one[pooled].any() or pooled[-1] >= cols):
            raise ValueError("pooled columns must be two-sided columns of the bank")
        m = len(pooled)
        self._down = np.flatnonzero(~one)  # columns that also get a downward sum
        # side j watches column _col[j]; upward sides first, then the downward ones, then the
        # pooled columns' up and down sides (one block: P is two calls)
        own = np.flatnonzero(~np.isin(np.arange(cols), pooled))
        own_down = self._down[~np.isin(self._down, pooled)]
        self._col = np.concatenate([own, own_down, pooled, pooled])
        self._sign = np.concatenate([np.ones(len(own)), -np.ones(len(own_down)), np.ones(m), -np.ones(m)])
        self._pool_at = len(self._col) - 2 * m  # first pooled side
        self._pool_guard = min(pool.h, pool.h_warn) if pool is not None else 0.0
        self._rank_sides: list[np.ndarray] = []  # per ranked column: its sides
        if pool is not None and pool.rank_first is not None:
            self._rank_sides = [np.flatnonzero(self._col == c)
                                for c in range(pool.rank_first, pool.rank_first + m)]
        # per column, its upward side; per two-sided column, its downward side
        up = self._sign > 0
        self._up_side = np.empty(cols, dtype=np.int64)
        self._up_side[self._col[up]] = np.flatnonzero(up)
        self._down_side = np.flatnonzero(~up)
        self._down_cols = self._col[self._down_side]
        self._h_side, self._warn_side = self.h[self._col], self.h_warn[self._col]
        # a sum above neither level needs no closer look (the usual batch)
        self._guard_side = np.minimum(self._h_side, self._warn_side)
        self._warn_is_guard = bool((self._warn_side <= self._h_side).all())
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
        self.pool_warned, self.pool_pending, self.pool_last_over = False, False, -1
        self.pool_streams: dict[int, list[int]] = {}

    @property
    def pooled_score(self) -> float:
        """The pooled statistic P now (0 without a pool)."""
        if self.pool is None:
            return 0.0
        return float(np.maximum(self.s[self._pool_at:] - self.pool.b, 0.0).sum())

    @property
    def score(self) -> np.ndarray:
        """max(S+, S-) per column."""
        out = np.zeros(len(self.mean))
        np.maximum.at(out, self._col, self.s)
        return out

    def _column_max(self, sums: np.ndarray) -> np.ndarray:
        """max(S+, S-) per column of one row of sums (as ``score``: the sums are never below
        zero), by two gathers, a fraction of np.maximum.at's cost."""
        out = sums[self._up_side]
        out[self._down_cols] = np.maximum(out[self._down_cols], sums[self._down_side])
        return out

    def _with_scores(self, dets: list[Detection], s: np.ndarray, fired: int = -1,
                     after: np.ndarray | None = None) -> list[Detection]:
        """``dets`` (rows ``s`` of this step) with their column scores; row ``fired`` is the
        alarm row, whose column scores after its restart are ``after``."""
        out = []
        for d in dets:
            row = d.index - self.seen
            scores = after if row == fired and after is not None else self._column_max(s[row])
            out.append(Detection(d.index, d.column, d.score, d.start_index, d.level, scores))
        return out

    def update(self, x: np.ndarray, missing: np.ndarray | None = None) -> list[Detection]:
        """Feed a batch (n, cols); return warnings, alarms (and with ``quiet``, returns to
        normal). A column that alarms restarts from zero, as after an alarm is raised. Where
        ``missing`` (n, cols) is true the cell carries no evidence: its sums keep their value."""
        x = np.asarray(x, dtype=np.float64)
        z = x[:, self._col]  # a copy (fancy indexing): standardized in place, k subtracted
        z *= self._scale_side
        z -= self._offset_side
        if self._clip_side is not None:  # minimum and maximum: a fraction of np.clip's cost
            np.minimum(z, self._clip_side, out=z)
            np.maximum(z, self._clip_low, out=z)
        if missing is not None:
            z[missing[:, self._col]] = 0.0
        out: list[Detection] = []
        while len(z):
            c = prefix_sum(z)
            low = prefix_min(c)
            neg = -self.s
            s = np.minimum(low, neg)
            np.subtract(c, s, out=s)
            # in the usual batch no sum is near a level: one comparison per side of its largest
            # sum (a reduction, then a short vector), no closer look
            top = s.max(axis=0)
            fired_rows = np.zeros(len(z), dtype=bool)
            over = fired_rows[:, None]
            above: np.ndarray = over  # (no side is hot: only its length is read)
            any_hot = bool((top > self._guard_side).any())
            if not any_hot and np.isnan(top).any():  # max propagates NaN: compare every row
                any_hot = bool((s > self._guard_side).any())
            if any_hot:
                above = s > self._guard_side
                over = s > self._h_side
                fired_rows = over.any(axis=1)
                if not self._warn_is_guard:
                    above = s > self._warn_side
            p = None
            if self.pool is not None and (self.pool_warned or self.pool_pending or np.maximum(
                    top[self._pool_at:] - self.pool.b, 0.0).sum() > self._pool_guard):
                # (P of any row is at most that bound: in the usual batch P needs no rows)
                p = np.maximum(s[:, self._pool_at:] - self.pool.b, 0.0).sum(axis=1)
                if p.max() > self.pool.h:
                    fired_rows = fired_rows | (p > self.pool.h)
            end = int(fired_rows.argmax()) + 1 if fired_rows.any() else len(z)
            hot: np.ndarray = np.zeros(len(self._col), dtype=bool)
            if any_hot:
                above = above[:end]
                hot = np.asarray(above.any(axis=0))
                any_hot = bool(hot.any())
            warnings = self._warnings(s[:end], hot, any_hot)
            at_warnings = len(out)
            out += warnings
            if self.quiet is not None:
                out += self._quiet(above, hot, any_hot)
            if p is not None:
                out += self._pool_levels(s[:end], p[:end])
            self._record_zero(c[:end], low[end - 1], neg)
            if end == len(z) and not fired_rows[-1]:
                if warnings:
                    out[at_warnings:at_warnings + len(warnings)] = self._with_scores(warnings, s)
                self.s = s[-1].copy()
                self.seen += len(z)
                break
            row = end - 1
            sides = np.flatnonzero(over[row])
            cols = np.unique(self._col[sides])
            pool_fired = self.pool is not None and p is not None and bool(p[row] > self.pool.h)
            if pool_fired:
                assert p is not None
                out.append(self._pool_detection(s, p, row, "alarm"))
            self.s = s[row].copy()
            reset = np.isin(self._col, cols)
            if pool_fired:  # every pooled sum restarts
                reset[self._pool_at:] = True
                self.pool_warned = False
            self.s[reset] = 0.0
            after = self._column_max(self.s)  # what the detections of this row see
            if warnings:
                out[at_warnings:at_warnings + len(warnings)] = self._with_scores(warnings, s, row, after)
            for col in cols.tolist():
                mine = sides[self._col[sides] == col]
                best = int(mine[np.argmax(s[row, mine])])
                out.append(Detection(self.seen + row, col, float(s[row, best]),
                                     int(self.start[best]), "alarm", after))
            self.start[reset] = self.seen + row + 1
            self.warned[cols] = False
            self.seen += row + 1
            z = z[row + 1:]
        return out

    def _pool_detection(self, s: np.ndarray, p: np.ndarray, row: int, level: str) -> Detection:
        assert self.pool is not None
        b, at, m = self.pool.b, self._pool_at, self.pool.streams
        # the sides that carry P: above b by at least a tenth of P (one barely above b is noise)
        sides = np.flatnonzero(s[row, at:] - b >= 0.1 * p[row])
        sides = sides[np.argsort(-s[row, at + sides], kind="stable")]
        streams = list(dict.fromkeys(int(j) % m for j in sides))
        if self._rank_sides:  # the one whose own level moved most first (exact at this row)
            streams.sort(key=lambda j: -float(s[row, self._rank_sides[j]].max()))
        self.pool_streams[self.seen + row] = streams
        start = self.seen + row
        if len(sides):  # where the largest pooled sum last left zero
            side = at + int(sides[0])
            zeros = np.flatnonzero(s[: row + 1, side] <= 0)
            start = self.seen + int(zeros[-1]) + 1 if len(zeros) else int(self.start[side])
        return Detection(self.seen + row, POOLED, float(p[row]), start, level)

    def _pool_levels(self, s: np.ndarray, p: np.ndarray) -> list[Detection]:
        """The pooled statistic's warnings (once per excursion, until P is back to zero) and,
        with ``quiet``, its returns to normal (``quiet`` samples in a row at or below the
        warning level)."""
        assert self.pool is not None
        warn = self.pool.h_warn
        if not self.pool_warned and not self.pool_pending and not p.max() > warn:
            return []
        out: list[Detection] = []
        row = 0
        while row < len(p):
            if not self.pool_warned:
                hits = np.flatnonzero(p[row:] > warn)
                if not len(hits):
                    break
                row += int(hits[0])
                self.pool_warned = True
                out.append(self._pool_detection(s, p, row, "warning"))
            zeros = np.flatnonzero(p[row:] <= 0)
            if not len(zeros):
                break
            row += int(zeros[0])
            self.pool_warned = False
        if self.quiet is None:
            return out
        above = np.flatnonzero(p > warn) + self.seen
        points = np.concatenate([[self.pool_last_over], above]) if self.pool_pending else above
        if not len(points):
            return out
        gaps = np.flatnonzero(np.diff(points) > self.quiet)
        out += [Detection(int(q) + self.quiet, POOLED, 0.0, -1, "quiet") for q in points[gaps]]
        self.pool_last_over = int(points[-1])
        self.pool_pending = self.seen + len(p) - 1 - self.pool_last_over < self.quiet
        if not self.pool_pending:
            out.append(Detection(self.pool_last_over + self.quiet, POOLED, 0.0, -1, "quiet"))
        return out

    def _warnings(self, s: np.ndarray, hot: np.ndarray, any_hot: bool) -> list[Detection]:
        """First crossing of the warning level per column, until its sums return to zero."""
        if not any_hot and not self.warned.any():  # hot: sides above the warning level
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

    def _quiet(self, above: np.ndarray, hot_sides: np.ndarray, any_hot: bool) -> list[Detection]:
        """Returns to normal: ``quiet`` samples in a row at or below the warning level after the
        column was last above it (exact per sample, whatever the batch size)."""
        assert self.quiet is not None
        cols_n = len(self.mean)
        if not any_hot and not self.pending.any():
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

    def _record_zero(self, c: np.ndarray, lowest: np.ndarray, neg: np.ndarray) -> None:
        """Where each sum was last zero in these rows: S_j = C_j - min(-S_0, min C_i<=j) is
        zero exactly at the rows where C reaches a new minimum at or below -S_0, so the last
        such row is the last one at the rows' minimum of C, if that minimum is <= -S_0."""
        hit = lowest <= neg
        if hit.any():
            last = len(c) - 1 - c[::-1].argmin(axis=0)
            self.start = np.where(hit, self.seen + last + 1, self.start)

    def state(self) -> dict[str, Any]:
        return {"s": self.s, "start": self.start, "seen": self.seen, "warned": self.warned,
                "last_over": self.last_over, "pending": self.pending,
                "pool": np.array([self.pool_warned, self.pool_pending, self.pool_last_over])}

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
        if "pool" in st:
            warned, pending, last = np.asarray(st["pool"]).tolist()
            self.pool_warned, self.pool_pending, self.pool_last_over = bool(warned), bool(pending), int(last)
