"""The innovation GLR: a shift of any tags in any direction, seen in what the process's own
dynamics did not predict.

A VAR(2) fitted on the rows the model was fitted on predicts every tag from every tag's last
two values; its innovations e_t (the part no tag's past explains), whitened by their covariance
(u_t = e_t W, W W' = S^-1) and each clipped at +-4 (a wild row counts as a large one, not as a
shift), are white before a change. A level shift of any tags moves their mean. The detector is
the GLR for a mean of unknown direction and size that started L rows ago,

    G_t = max over L of |u_(t-L+1) + ... + u_t|^2 / (2 L),    L in 8, 11, 17, ..., 985, 1024

(a geometric grid; windows of at least 8 rows, so that one wild row cannot raise it). The L
that maximises G is the change's estimated start. It knows neither the tags nor the direction;
where tags are coupled through their dynamics (a loop, a VAR), it sees what the per-tag
streams of agent.monitor.pooled miss, and the other way round (docs/monitoring.md, "The
innovation GLR").

False-alarm law (stated in the manifest): the fitted VAR is not the line's law (the
innovations of a ringing loop are far from white), so the law comes from the rows the VAR
never fitted, the bundle's held-out rows: Gaussian rows with those innovations' long-run
covariance (Bartlett, the monitor's bandwidth), each replicate offset by N(0, C / n_fit) (the
fit's mean error), clipped as the data are; the rate of G's excursions above H fitted
log-linear in H along the upper tail (slope never steeper than -1) and taken to the share's
rate. The held-out rows are then replayed and H raised while they cross it more often than
the 99% Poisson quantile of the share. Measured as a study before it was built: no false alarm
in 17.7 weeks of drift-free rows of three generators (bench/agnostic_oracle.py).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from agent.monitor.alarms import TOP, Key, MonitorEvent
from agent.monitor.cusum import Detection
from agent.monitor.replaycheck import allowed_alarms

if TYPE_CHECKING:
    from agent.monitor.monitor import ModelMonitor

ORDER = 2  # lags of the VAR
CLIP = 4.0  # as the monitor's mean CUSUMs: a whitened innovation beyond 4 counts as 4
SHORTEST = 8  # the shortest window: a wild row alone cannot alarm
LONGEST = 1024
GRID = tuple(length for length in sorted({round(1.5 ** i) for i in range(18)} | {LONGEST})
             if length >= SHORTEST)
SIM_ELEMENTS = 32_000_000  # rows x tags simulated for the law (about 2-4 s on an industrial PC)
REPLICATE = 100_000  # rows of one replicate (one mean error of the fit)
MIN_FIT_ROWS = 200  # and 10 rows per VAR coefficient of a tag
MIN_HELD_OUT = 200
REBASE = 1e6  # the running sums are rebased when they grow past this (their differences stay)
HYSTERESIS = 0.8  # a warning re-arms once G is below 80% of its level
SEGMENT = 4096  # rows scored at a time (a long batch, e.g. a replay, in bounded memory)


def _lagged(z: np.ndarray) -> np.ndarray:
    """Regressors of rows ORDER..end: 1, z_(t-1), z_(t-2)."""
    rows = len(z) - ORDER
    return np.hstack([np.ones((rows, 1)), *[z[ORDER - i:ORDER - i + rows] for i in range(1, ORDER + 1)]])


_WINDOWS = np.array(GRID, dtype=np.int64)
_HALF_INVERSE = 1.0 / (2.0 * _WINDOWS[:, None])
_BACK: dict[int, np.ndarray] = {}  # rows -> LONGEST + each row's offset - each window, (windows, rows)


def window_scores(cums: np.ndarray, rows: int, since: np.ndarray | None,
                  work: np.ndarray | None = None) -> np.ndarray:
    """|window sum|^2 / (2 L) of every window (rows of the result) for each of the last
    ``rows`` rows of the running sums ``cums`` (the LONGEST rows before them first); 0 for a
    window longer than ``since`` (per row: how many rows its windows may reach back; None: all
    may). G is the largest of a column. Every window at once: a few numpy calls per batch,
    whatever its size (a loop over the windows cost 2.5 us a sample at batch 64). ``work``:
    a (windows, rows, tags) buffer to reuse (a fresh one of that size is a page-faulting
    allocation every batch)."""
    back = _BACK.get(rows)
    if back is None:  # into the rows from LONGEST before the first on
        back = np.arange(rows)[None, :] - _WINDOWS[:, None] + LONGEST
        if rows <= 4096:
            _BACK[rows] = back
    end = len(cums)
    s = np.take(cums[end - rows - LONGEST:], back, axis=0, out=work)
    np.subtract(cums[end - rows:], s, out=s)
    g: np.ndarray = np.asarray(np.einsum("wrk,wrk->wr", s, s))
    g *= _HALF_INVERSE
    if since is not None:
        g[since[None, :] < _WINDOWS[:, None]] = 0.0
    return g


def long_run_cov(u: np.ndarray) -> np.ndarray:
    """Bartlett long-run covariance of the rows ``u`` (centred), the monitor's bandwidth rule."""
    from agent.monitor.pooled import bandwidth

    d = u - u.mean(axis=0)
    lags = bandwidth(len(d))
    cov = d.T @ d / len(d)
    for lag in range(1, lags + 1):
        g = d[lag:].T @ d[:-lag] / len(d)
        cov += (1 - lag / (lags + 1)) * (g + g.T)
    return np.asarray(cov)


def glr_series(u: np.ndarray) -> np.ndarray:
    """G of every row of the (already clipped) innovations ``u``, from a start."""
    cums = np.vstack([np.zeros((LONGEST + 1, u.shape[1])), np.cumsum(u, axis=0)])
    out = np.empty(len(u))
    for at in range(0, len(u), SEGMENT):  # in bounded memory
        rows = min(SEGMENT, len(u) - at)
        out[at:at + rows] = window_scores(cums[:LONGEST + 1 + at + rows], rows,
                                          np.arange(at + 1, at + rows + 1)).max(axis=0)
    return out


def excursions(g: np.ndarray, h: float) -> int:
    """How many times G rises above h."""
    above = g > h
    return int((above & ~np.concatenate([[False], above[:-1]])).sum())


def tail_level(g: np.ndarray, arl: float) -> float:
    """The level of G with one excursion in ``arl`` rows: the excursions' rate over the upper
    tail of g, log-linear in the level, extrapolated from its highest well-counted level, the
    slope never steeper than -1 (the tail of a log-likelihood ratio; flatter is safer)."""
    levels = np.linspace(np.quantile(g, 0.99), np.quantile(g, 1 - 200 / len(g)), 12)
    rates = np.array([excursions(g, h) / len(g) for h in levels])
    ok = rates * len(g) >= 20
    if ok.sum() < 2:  # no tail to fit: the highest level seen, an excursion per its count
        return float(g.max())
    slope, icept = (float(c) for c in np.polyfit(levels[ok], np.log(rates[ok]), 1))
    top = float(levels[ok][-1])
    use = max(slope, -1.0) if slope < 0 else -1.0
    if 1 / arl >= math.exp(icept + slope * top):  # within what was counted
        return float(levels[ok][np.argmax(rates[ok] <= 1 / arl)]) if (rates[ok] <= 1 / arl).any() else top
    return top + (math.log(1 / arl) - (icept + slope * top)) / use


def simulated(cov: np.ndarray, n_fit: int, seed: int = 0) -> np.ndarray:
    """G on Gaussian rows with covariance ``cov``, each replicate offset by N(0, cov / n_fit),
    clipped as the data are (a fixed seed: a bundle build is reproducible)."""
    tags = len(cov)
    chol = np.linalg.cholesky(cov + 1e-9 * np.trace(cov) / tags * np.eye(tags))
    rng = np.random.default_rng(seed)
    reps = max(10, min(40, SIM_ELEMENTS // (REPLICATE * tags)))  # 1-4 million rows
    out = []
    for _ in range(reps):
        rows = rng.standard_normal((REPLICATE, tags)) + rng.standard_normal(tags) / math.sqrt(n_fit)
        out.append(glr_series(np.clip(rows @ chol.T, -CLIP, CLIP)))
    return np.concatenate(out)


def possible(tags: int, rows: int, held_out: int) -> bool:
    """Whether a model has the detector: two or more numeric inputs, rows enough to fit the VAR
    (10 per coefficient of a tag) and held-out rows enough to calibrate its law on."""
    fit_rows = rows - held_out
    return tags >= 2 and held_out >= MIN_HELD_OUT and fit_rows >= max(MIN_FIT_ROWS, 10 * (ORDER * tags + 1))


def innovation_section(x: np.ndarray, held_out: int, rates: tuple[float, float],
                       samples_per_week: float) -> dict[str, Any]:
    """The manifest's innovation section from the numeric inputs ``x`` (every reference row in
    time order; the last ``held_out`` of them the model never fitted; ``possible`` first)."""
    tags = x.shape[1]
    n_fit = len(x) - held_out
    fitting = x[:n_fit]
    centre = fitting.mean(axis=0)
    scale = fitting.std(axis=0)
    scale = np.where(scale > 1e-12 * (np.abs(centre) + 1), scale, x.std(axis=0))
    z = (x - centre) / scale
    regressors = _lagged(z[:n_fit])
    coef, *_ = np.linalg.lstsq(regressors, z[ORDER:n_fit], rcond=None)
    resid = z[ORDER:n_fit] - regressors @ coef
    cov = resid.T @ resid / max(1, len(resid) - regressors.shape[1])
    cov += 1e-6 * np.trace(cov) / tags * np.eye(tags)  # a tag the others predict exactly
    whiten = np.linalg.cholesky(np.linalg.inv(cov))  # u = e W, W W' = S^-1
    ref = z[n_fit - ORDER:]  # the held-out rows, their lags from the two rows before
    u_ref = (ref[ORDER:] - _lagged(ref) @ coef) @ whiten
    g = simulated(long_run_cov(u_ref), n_fit, seed=tags)
    h_warn, h_alarm = (tail_level(g, samples_per_week / r) for r in rates)
    g_ref = glr_series(np.clip(u_ref, -CLIP, CLIP))  # (the replay check)
    limit = allowed_alarms(len(u_ref), rates[1], samples_per_week)
    adjusted = False
    while excursions(g_ref, h_alarm) > limit:  # the held-out rows hold no drift by definition
        h_alarm *= 1.25
        h_warn = max(h_warn, h_alarm * 0.8)
        adjusted = True
    return {"centre": centre.tolist(), "scale": scale.tolist(), "order": ORDER,
            "coef": coef.round(10).tolist(), "whiten": whiten.round(10).tolist(), "clip": CLIP,
            "windows": list(GRID), "h_warn": min(h_warn, h_alarm), "h_alarm": h_alarm,
            "fit_rows": n_fit, "law_rows": len(u_ref), "simulated_rows": len(g),
            "replay_adjusted": adjusted,
            "law": "G = max over the windows L of |sum of the last L whitened VAR(2) innovations, "
                   "clipped at 4|^2 / (2 L); Monte Carlo of G for Gaussian rows with the held-out "
                   "rows' long-run covariance of the innovations, a fit error N(0, C / n_fit) "
                   "per replicate; the excursions' rate fitted log-linear in H along the upper "
                   "tail (slope at least -1) and taken to the share's rate; held-out replay check"}


class InnovationGLR:
    """The detector of one model, fed the numeric inputs batch by batch; exact per sample
    whatever the batch size. Detections: a warning once per excursion above ``h_warn`` (it
    re-arms below HYSTERESIS of it), an alarm above ``h_alarm`` (the windows then restart after
    it), and with ``quiet`` a return to normal after that many rows at or below ``h_warn``."""

    def __init__(self, spec: dict[str, Any], quiet: int | None = None) -> None:
        self.centre = np.asarray(spec["centre"], dtype=np.float64)
        self.scale = np.asarray(spec["scale"], dtype=np.float64)
        self.coef = np.asarray(spec["coef"], dtype=np.float64)
        self.whiten = np.asarray(spec["whiten"], dtype=np.float64)
        self.clip = float(spec["clip"])
        self.h_warn, self.h = float(spec["h_warn"]), float(spec["h_alarm"])
        # a window's mean innovation back to the level shift that would cause it (a steady
        # shift d moves the innovations by d (I - A1' - A2')), over its standard error, to name
        # the tags that moved; a process that integrates (no inverse) names by innovation
        tags = len(self.centre)
        steady = np.eye(tags) - self.coef[1:tags + 1] - self.coef[tags + 1:2 * tags + 1]
        unwhiten = np.linalg.inv(self.whiten)
        to_level = unwhiten @ np.linalg.inv(steady) if np.linalg.cond(steady) < 1e8 else unwhiten
        self.to_level = to_level / np.sqrt(np.maximum((to_level * to_level).sum(axis=0), 1e-300))
        self.quiet = quiet
        # the running sums of the rows, in order, the last LONGEST + 1 of them before ``fill``;
        # room for a segment after them, so that a batch is written in place, not copied
        self.buf = np.zeros((LONGEST + 1 + SEGMENT, tags))
        self.fill = LONGEST + 1
        # the VAR step and the whitening on the raw values, in one: u = x B0 - x_(t-1) B1 -
        # x_(t-2) B2 + b, with z = (x - centre) / scale and u = (z - c0 - z1 A1' - z2 A2') W
        inv = 1.0 / self.scale
        a1, a2 = self.coef[1:tags + 1], self.coef[tags + 1:2 * tags + 1]
        zc = self.centre * inv
        self.b_all = np.vstack([inv[:, None] * self.whiten, -inv[:, None] * (a1 @ self.whiten),
                                -inv[:, None] * (a2 @ self.whiten),  # [x, x_(t-1), x_(t-2), 1] B
                                (-zc + zc @ a1 + zc @ a2 - self.coef[0]) @ self.whiten])
        self.low3 = np.tile(self.centre - 1e6 * self.scale, 3)
        self.high3 = np.tile(self.centre + 1e6 * self.scale, 3)
        self.lags = np.zeros((ORDER, tags))  # the last rows, oldest first
        self.lags_seen = 0
        self.dirty = 0  # rows to come whose lags were filled in (a missing value)
        self.since = 0  # rows since the start or the last alarm
        self.seen = 0
        self.warned = False
        self.up = False  # a warning or alarm not yet back to normal
        self.last_over = -1
        self.score = 0.0
        self._work: dict[int, np.ndarray] = {}  # rows -> window_scores' buffer
        self._design: dict[int, np.ndarray] = {}  # rows -> innovations' buffer
        self.top: dict[int, tuple[list[int], int]] = {}  # detection index -> (tags, window)

    def innovations(self, x: np.ndarray, complete: np.ndarray | None) -> np.ndarray:
        """Whitened, clipped innovations of a batch; 0 where a row or its lags were not all
        measured (no evidence either way)."""
        n, tags = x.shape
        design = self._design.get(n)  # rows [x_t, x_(t-1), x_(t-2), 1], a buffer per batch size
        if design is None:
            design = np.ones((n, 3 * tags + 1))
            if len(self._design) < 4:
                self._design[n] = design
        lags = self.lags
        design[:, :tags] = x
        design[:1, tags:2 * tags] = lags[1:]
        design[1:, tags:2 * tags] = x[:-1]
        design[:min(n, 2), 2 * tags:3 * tags] = lags[:min(n, 2)]
        design[2:, 2 * tags:3 * tags] = x[:-2]
        u: np.ndarray = np.asarray(design @ self.b_all)
        if math.isnan(u.sum()):  # a value near 1.7e308 overflowed the VAR step: clip the values
            np.clip(design[:, :-1], self.low3, self.high3, out=design[:, :-1])  # to a million
            u = np.asarray(design @ self.b_all)  # spreads, far beyond any reading
        np.minimum(u, self.clip, out=u)  # (minimum and maximum: a fraction of np.clip's cost)
        np.maximum(u, -self.clip, out=u)
        # the last two rows, clipped as the VAR step saw them
        newest = design[-ORDER:, :tags]
        self.lags = newest.copy() if n >= ORDER else np.vstack([lags, newest])[-ORDER:]
        if self.lags_seen == ORDER and not self.dirty and complete is None:
            return u  # the common batch
        blind = np.zeros(len(x), dtype=bool)
        blind[:max(0, ORDER - self.lags_seen)] = True  # no lags yet
        blind[:self.dirty] = True
        if complete is not None:
            bad = np.flatnonzero(~complete)
            for row in bad:
                blind[row:row + ORDER + 1] = True
            self.dirty = max(0, int(bad[-1]) + ORDER + 1 - len(x)) if len(bad) else 0
        else:
            self.dirty = max(0, self.dirty - len(x))
        u[blind] = 0.0
        self.lags_seen = min(ORDER, self.lags_seen + len(x))
        return u

    def update(self, x: np.ndarray, complete: np.ndarray | None = None) -> list[Detection]:
        """Feed a batch of raw numeric inputs (rows x tags; ``complete``: per row whether every
        value was measured, None when all were)."""
        if not len(x):
            return []
        u = self.innovations(x, complete)
        out: list[Detection] = []
        pos = 0
        while pos < len(u):
            seg = u[pos:pos + SEGMENT]
            buf, fill = self.buf, self.fill
            if fill + len(seg) > len(buf):  # the last rows to the front, room after them
                buf[:LONGEST + 1] = buf[fill - LONGEST - 1:fill]
                fill = self.fill = LONGEST + 1
                if np.abs(buf[fill - 1]).max() > REBASE:  # (their differences stay)
                    buf[:fill] -= buf[fill - 1].copy()
            new = buf[fill:fill + len(seg)]
            np.add.accumulate(seg, axis=0, out=new)  # (narrow: faster than doubling)
            new += buf[fill - 1]
            cums = buf[:fill + len(seg)]
            since = None if self.since >= LONGEST else self.since + np.arange(1, len(seg) + 1)
            work = self._work.get(len(seg))
            if work is None:
                work = np.empty((len(_WINDOWS), len(seg), buf.shape[1]))
                if len(self._work) < 4:  # the batch sizes a line feeds
                    self._work[len(seg)] = work
            windows = window_scores(cums, len(seg), since, work)
            g = windows.max(axis=0)
            stop = self._levels(g, windows, cums, pos, out)
            used = len(seg) if stop is None else stop + 1
            self.fill = fill + used
            self.since = 0 if stop is not None else self.since + used
            self.score = 0.0 if stop is not None else float(g[-1])
            self.seen += used
            pos += used
        return out

    def _levels(self, g: np.ndarray, windows: np.ndarray, cums: np.ndarray, pos: int,
                out: list[Detection]) -> int | None:
        """Detections of a segment's rows, in order; the row of an alarm (the segment ends
        there), or None."""
        over = g > self.h_warn
        if not over.any():  # the common segment: at most a re-arm and a return to normal
            if self.warned and (g < HYSTERESIS * self.h_warn).any():
                self.warned = False
            if self.up and self.quiet is not None and self.last_over + self.quiet < self.seen + len(g):
                out.append(Detection(max(self.seen, self.last_over + self.quiet), 0, 0.0, -1, "quiet"))
                self.up = False
            return None
        for row in range(len(g)):
            index = self.seen + row
            if over[row]:
                self.last_over = index
                if g[row] > self.h:
                    out.append(self._detection(g, windows, cums, row, index, "alarm"))
                    self.up, self.warned = True, False
                    return row
                if not self.warned:
                    out.append(self._detection(g, windows, cums, row, index, "warning"))
                    self.up = self.warned = True
            elif g[row] < HYSTERESIS * self.h_warn:
                self.warned = False
            if self.up and self.quiet is not None and index - self.last_over >= self.quiet:
                out.append(Detection(index, 0, 0.0, -1, "quiet"))
                self.up = False
        return None

    def _detection(self, g: np.ndarray, windows: np.ndarray, cums: np.ndarray, row: int, index: int,
                   level: str) -> Detection:
        window = int(_WINDOWS[int(windows[:, row].argmax())])
        end = len(cums) - len(g) + row
        moved = (cums[end] - cums[end - window]) @ self.to_level / window
        order = np.argsort(-np.abs(moved)).tolist()
        self.top[index] = (order, window)
        if len(self.top) > 64:  # only the events being applied read them
            self.top.pop(next(iter(self.top)))
        return Detection(index, 0, float(g[row]), index - window + 1, level)

    def state(self) -> dict[str, Any]:
        return {"cums": self.buf[self.fill - LONGEST - 1:self.fill].copy(), "lags": self.lags,
                "counts": np.array([self.lags_seen, self.dirty, self.since, self.seen, self.last_over,
                                    int(self.warned), int(self.up)])}

    def restore(self, s: dict[str, Any]) -> None:
        self.buf[:LONGEST + 1] = s["cums"]
        self.fill = LONGEST + 1
        self.lags[:] = s["lags"]
        c = [int(v) for v in np.asarray(s["counts"]).reshape(-1).tolist()]
        if len(c) != 7:
            raise ValueError(f"innovation GLR state: 7 counts expected, got {len(c)}")
        self.lags_seen, self.dirty, self.since, self.seen, self.last_over = c[:5]
        self.warned, self.up = bool(c[5]), bool(c[6])


def monitor_events(monitor: ModelMonitor, det: Detection) -> list[MonitorEvent]:
    """The condition of the innovation GLR: one per model at a time, named after the tag whose
    innovations moved most when it rose (the name stays while it is up); the tags in the order
    of their move over the window that gave G as its top features, the window's first row as
    the change's estimated start."""
    glr = monitor.innovation
    assert glr is not None
    current: Key | None = next((key for key in monitor.book.states if key[1] == "innovation_glr"), None)
    if det.level == "quiet":
        return monitor._normal(current, det.index, glr.h_warn) if current is not None else []
    order, _ = glr.top.get(det.index, ([], 0))
    top = [monitor.names[j] for j in order[:TOP]]
    feature = current[2] if current is not None else (top[0] if top else None)
    thr = glr.h if det.level == "alarm" else glr.h_warn
    return monitor._raise(monitor._event("data_drift", "innovation_glr", feature, det.level, det.score,
                                         thr, det.index, top, det.start_index))
