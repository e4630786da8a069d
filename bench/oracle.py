"""The reference delay for a mean shift: a CUSUM that knows the change exactly.

The oracle knows which tags move and by how much (the shift vector delta, in the tags' units)
and models the drift-free process as a VAR(p) with intercept, fitted on the rows the model was
fitted on (the monitor's reference). All it does not know is when the change comes. Its
log-likelihood ratio per row is that of the innovations: a level shift delta from row tau on
moves the innovation e_t = x_t - c - A1 x_(t-1) - ... - Ap x_(t-p) by

    m_k = (I - A1 - ... - Ak) delta,  k = min(t - tau, p)

(the change row itself shows the whole jump, m_0 = delta; from p rows on the steady m_p), so

    llr_t(k) = m_k' S^-1 (e_t - m_k / 2),   S the innovation covariance,

and the CUSUM S_t = max(0, S_(t-1) + llr_t) takes the steady llr_t(p), but on the p rows from
the change on their partial terms llr_t(t - tau), tau the true change row: the oracle knows the
time too, for those p rows only. (The exact statistic without that knowledge, the maximum over
every tau of the partial-term sums, restarts from the change row's large-variance term at every
row: on a simulated VAR(1) line it raised 2.5 times the steady CUSUM's false alarms at the same
h, and no law of this project calibrates it.) Knowing the time can only make the oracle faster,
as a bound should be. Its threshold h comes from the steady increments llr_t(p) on the
held-out rows (the monitor's calibration rows), for the monitor's own false-alarm budget (1
alarm a week at 1 Hz), through agent.monitor.laws.empirical_cusum_h. (On the simulated VAR(1)
line of its unit test, six fits' h gave 1-4 alarms in a week of drift-free rows, not 1: the
law's 1,000 held-out rows are a small sample of a tail; so the oracle, if anything, is
calibrated looser than the budget, i.e. faster than it should be.) The information it gets is
KL = m_p' S^-1 m_p / 2 nats a row; h / KL is roughly the delay of any test that waits for the
steady part of the evidence.

p = 2 by default: the first generator's tags are an AR(1) factor, an AR(1) wander and white
noise (an ARMA, no finite VAR), the second's factor rings (AR(2)); p = 2 takes the ringing and
most of the whitening, and ``order`` can be raised to see how much a longer memory would add.

No monitor that must find the direction of a shift can beat this oracle on average (it is the
optimal test for this change and model, up to the fit's error), so where the oracle needs more
rows than a goal allows, the goal cannot be met on that line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agent.monitor.laws import empirical_cusum_h

WEEK_AT_1HZ = 7 * 24 * 3600  # the model's default budget: 1 false alarm a week at 1 Hz


def _lagged(x: np.ndarray, p: int) -> np.ndarray:
    """Regressors of rows p..end: 1, x_(t-1), ..., x_(t-p)."""
    rows = len(x) - p
    return np.hstack([np.ones((rows, 1)), *[x[p - i:p - i + rows] for i in range(1, p + 1)]])


@dataclass
class Oracle:
    keep: np.ndarray  # the tags it models (a tag constant on the fitting rows carries nothing)
    centre: np.ndarray  # standardisation of the kept tags (for the fit's conditioning only)
    scale: np.ndarray
    coef: np.ndarray  # (1 + p n, n): intercept, then A1', ..., Ap' (standardised units)
    precision: np.ndarray  # S^-1
    means: np.ndarray  # (p + 1, n): m_0 .. m_p, the innovation mean k rows after the change
    order: int
    h: float = 0.0
    held_out_mean: float = 0.0  # mean steady llr on the held-out rows (about -KL when the model holds)

    @property
    def kl(self) -> float:
        """Steady information of the shift, nats per row: m' S^-1 m / 2."""
        m = self.means[-1]
        return float(m @ self.precision @ m / 2)

    @property
    def kl_jump(self) -> float:
        """Information of the change row itself (m_0 = delta)."""
        m = self.means[0]
        return float(m @ self.precision @ m / 2)

    def _std(self, x: np.ndarray) -> np.ndarray:
        return np.asarray((x[:, self.keep] - self.centre) / self.scale)

    def innovations(self, x: np.ndarray) -> np.ndarray:
        """e_t of rows p..end of ``x`` (tags' units), in the standardised units of the fit."""
        z = self._std(x)
        return np.asarray(z[self.order:] - _lagged(z, self.order) @ self.coef)

    def llr(self, x: np.ndarray) -> np.ndarray:
        """(rows - p, p + 1): llr_t(k) of rows p..end for a change k rows back (k = p: p or more)."""
        e = self.innovations(x)
        w = self.precision @ self.means.T  # (n, p + 1)
        half = np.einsum("kn,nk->k", self.means, w) / 2
        return np.asarray(e @ w - half)

    def alarms(self, x: np.ndarray, change: int | None = None) -> list[int]:
        """Rows of ``x`` at which S = max(0, S + llr_t) exceeds h (it starts afresh after each);
        llr_t is the steady one, but for the p rows from ``change`` on, which get their partial
        terms exactly (the oracle knows the change, its time included)."""
        table = self.llr(x)
        p = self.order
        age = np.full(len(table), p)
        if change is not None:
            rows = np.arange(p, len(x))
            age = np.where(rows >= change, np.minimum(rows - change, p), p)
        fired: list[int] = []
        s = 0.0
        for i, v in enumerate(table[np.arange(len(table)), age].tolist()):
            s = max(0.0, s + v)
            if s > self.h:
                fired.append(i + p)
                s = 0.0
        return fired


def fit(history: np.ndarray, fit_rows: int, delta: np.ndarray, order: int = 2,
        arl: float = WEEK_AT_1HZ) -> Oracle:
    """The oracle of a level shift ``delta`` (tags' units): VAR(order) on history[:fit_rows],
    h from the steady llr of history[fit_rows:] (its lags from the rows before)."""
    if order < 1:
        raise ValueError("order: at least 1")
    history = np.asarray(history, dtype=np.float64)
    fitting = history[:fit_rows]
    keep = fitting.std(axis=0) > 1e-9 * (np.abs(fitting).mean(axis=0) + 1)  # not float dust
    centre, scale = fitting[:, keep].mean(axis=0), fitting[:, keep].std(axis=0)
    z = (fitting[:, keep] - centre) / scale
    regressors = _lagged(z, order)
    coef, *_ = np.linalg.lstsq(regressors, z[order:], rcond=None)
    resid = z[order:] - regressors @ coef
    cov = resid.T @ resid / (len(resid) - regressors.shape[1])
    n = int(keep.sum())
    d = np.asarray(delta, dtype=np.float64)[keep] / scale
    lags = [coef[1 + i * n:1 + (i + 1) * n].T for i in range(order)]  # A_i, x_t = A_i x_(t-i) + ...
    means = np.array([(np.eye(n) - sum((lags[i] for i in range(k)), np.zeros((n, n)))) @ d
                      for k in range(order + 1)])
    oracle = Oracle(keep, centre, scale, coef, np.linalg.inv(cov), means, order)
    steady = oracle.llr(history[fit_rows - order:])[:, -1]
    oracle.held_out_mean = float(steady.mean())
    oracle.h = empirical_cusum_h(arl, steady)
    return oracle


def delay(oracle: Oracle, x: np.ndarray, change: int) -> tuple[int | None, int]:
    """(rows from ``change`` to the first alarm at or after it, alarms before it)."""
    fired = oracle.alarms(x, change)
    after = [i for i in fired if i >= change]
    return (after[0] - change if after else None), sum(1 for i in fired if i < change)


def known_shift(shifted: np.ndarray, clean: np.ndarray, change: int) -> np.ndarray:
    """The shift vector of a mean-shift stream, from the drift-free stream of the same seed
    (bench/line_streams.py draws the same process for both, the shift's size after it): the
    mean difference of the rows from ``change`` on (exact but for sensor rounding)."""
    if not np.array_equal(shifted[:change], clean[:change]):
        raise ValueError("the streams differ before the change: not the same seed's process")
    return np.asarray((shifted[change:] - clean[change:]).mean(axis=0))
