"""A study, not part of the monitor: how much of the mean shift's delay is the price of not
knowing its direction. Between the oracle (bench/oracle.py: knows the tags that move, the shift
vector and the drift-free VAR(2) law) and the monitor sit these references, each a GLR on the
same VAR(2) innovations at the same whole budget (one false alarm a week at 1 Hz):

* ``set known``: knows the dynamics and which tags move, not the direction or the size. A level
  shift b on the tags T moves the steady innovation by M_T b, M_T the columns T of
  I - A1 - A2. With the innovations whitened (u_t = L' e_t, S^-1 = L L') and Q an orthonormal
  basis of L' M_T, v_t = Q' u_t is k = |T| white standard normals before the change and has a
  mean of any direction after it. The GLR for that is

      G_t = max_L |v_(t-L+1) + ... + v_t|^2 / (2 L),   L in a geometric grid up to 1,024

  (the exact GLR but for the change's first p rows, whose partial terms it does not use).
* ``blind``: the same GLR on all n whitened innovations, T unknown (k = n). It is a detector a
  monitor could run (it needs only the fitted VAR), so it answers also what a chi-square test of
  the innovations would give.

* ``blind_held_out``: blind, with its threshold from what a bundle has (``held_out_level``: the
  held-out rows' long-run covariance, Gaussian replicates offset by the fit's mean error, the
  monitor's replay check); ``robust_held_out`` the same with each whitened innovation clipped at
  4 and windows of at least 8 rows, in the data and in the law.

The first two take their threshold H from the line's own drift-free law, which no monitor knows: the
episodes of G > H on 400,000 drift-free rows of the line (a seed of their own), their rate
fitted log-linear in H and taken to the week's rate; a 50,000-row drift-free stream of another
seed checks it. (The law of G on white normals, the VAR's own assumption, was tried first: with
the fitted VAR's errors the lines then raised 20-100 times their budget, the blind GLR up to
1,300 episodes in 50,000 rows. A bound must be calibrated on the law it is a bound for.)

    python -m bench.agnostic_oracle                          # every set of bench.drift_cases
    python -m bench.agnostic_oracle "thirteenth;twelfth"     # the sets whose titles hold these
    python -m bench.agnostic_oracle 0:20                     # the first twenty sets

If the ``set known`` reference needs more than 90 rows on a line, no monitor that must find the
direction can meet the issue's mean-shift goal there.

Measured (2026-12-03, evening; docs/monitoring.md, "What not knowing the direction costs, and
a blind innovation GLR"): on the 195 lines of the 39 sets, against the oracle's rows (geometric
means), set known 2.2 times, blind on the line's law 3.5, blind on the held-out law 3.2, robust
blind 3.1; medians over 90 on 9 of 37 shapes (set known) and 16 (robust blind). False alarms
in 17.7 weeks of drift-free rows (the budget: about 18): set known 178, blind on the line's law
154, blind on the held-out law 915 (all but none on the heavy-tailed loop lines), robust blind
0.
"""

from __future__ import annotations

import json
import math
import statistics
import sys

import numpy as np

from agent.monitor import pooled
from agent.monitor.budget import SECONDS_PER_WEEK
from agent.monitor.replaycheck import allowed_alarms
from bench import drift_cases as dc
from bench import oracle
from bench.line_shapes import Shape
from bench.line_streams import line_for

GRID = tuple(sorted({round(1.5 ** i) for i in range(18)} | {1024}))  # 1, 2, 3, 5, 8, ..., 1024
CALIBRATION_ROWS = 400_000  # drift-free rows of the line itself, for the threshold
SIMULATED_ROWS, REPLICATE = 4_000_000, 100_000  # the held-out law's simulation
ROBUST_SHORTEST = 8  # the robust variant's shortest window (a wild row alone cannot alarm)


def glr(v: np.ndarray, shortest: int = 1) -> np.ndarray:
    """G_t of each row of v (rows x k): the largest |window sum|^2 / (2 L) over the grid's
    windows of at least ``shortest`` rows that fit in the rows so far."""
    cs = np.vstack([np.zeros((1, v.shape[1])), np.cumsum(v, axis=0)])
    g = np.zeros(len(v))
    for length in GRID:
        if length < shortest:
            continue
        if length > len(v):
            break
        s = cs[length:] - cs[:-length]
        g[length - 1:] = np.maximum(g[length - 1:], np.einsum("ij,ij->i", s, s) / (2 * length))
    return g


def episodes(g: np.ndarray, h: float) -> np.ndarray:
    """Rows where G rises above h (the first row of each run above it)."""
    above = g > h
    return np.flatnonzero(above & ~np.concatenate([[False], above[:-1]]))


def tail_level(g: np.ndarray, arl: float) -> float:
    """The level of G with one episode in ``arl`` rows: the episodes' rate over the upper tail
    of g, fitted log-linear in the level and extrapolated from its highest well-counted level,
    the slope never steeper than -1 (the tail of a log-likelihood ratio; flatter is safer)."""
    levels = np.linspace(np.quantile(g, 0.99), np.quantile(g, 1 - 200 / len(g)), 12)
    rates = np.array([len(episodes(g, h)) / len(g) for h in levels])
    ok = rates * len(g) >= 20
    slope, icept = (float(c) for c in np.polyfit(levels[ok], np.log(rates[ok]), 1))
    top = float(levels[ok][-1])
    use = max(slope, -1.0) if slope < 0 else -1.0
    return top + (math.log(1 / arl) - (icept + slope * top)) / use


def long_run_cov(u: np.ndarray) -> np.ndarray:
    """Bartlett long-run covariance of the rows u (centred), the monitor's bandwidth rule."""
    d = u - u.mean(axis=0)
    lags = pooled.bandwidth(len(d))
    cov = d.T @ d / len(d)
    for lag in range(1, lags + 1):
        g = d[lag:].T @ d[:-lag] / len(d)
        cov += (1 - lag / (lags + 1)) * (g + g.T)
    return np.asarray(cov)


def held_out_level(u_ref: np.ndarray, n_fit: int, arl: float = oracle.WEEK_AT_1HZ, shortest: int = 1,
                   clip: float = math.inf) -> float:
    """The blind GLR's H from what a bundle has: the held-out rows' whitened innovations
    ``u_ref``. Gaussian rows with their long-run covariance C, each replicate offset by
    N(0, C / n_fit) (the fit's mean error), the episodes' tail; then the replay check of the
    monitor (H x 1.25 while the held-out rows raise more than the law allows)."""
    cov = long_run_cov(u_ref)
    chol = np.linalg.cholesky(cov + 1e-9 * np.eye(len(cov)))
    rng = np.random.default_rng(len(cov))
    def replicate() -> np.ndarray:
        rows = rng.standard_normal((REPLICATE, len(cov))) + rng.standard_normal(len(cov)) / math.sqrt(n_fit)
        return glr(np.clip(rows @ chol.T, -clip, clip), shortest)

    g = np.concatenate([replicate() for _ in range(SIMULATED_ROWS // REPLICATE)])
    h = tail_level(g, arl)
    limit = allowed_alarms(len(u_ref), 1.0, SECONDS_PER_WEEK)
    while len(episodes(glr(np.clip(u_ref, -clip, clip), shortest), h)) > limit:
        h *= 1.25
    return h


def whitened(known: oracle.Oracle, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, lags' I - A1 - A2): the innovations of x whitened, and the steady shift map."""
    n = int(known.keep.sum())
    lower = np.linalg.cholesky(known.precision)  # S^-1 = L L'
    lags = [known.coef[1 + i * n:1 + (i + 1) * n].T for i in range(known.order)]
    steady = np.eye(n) - sum(lags, np.zeros((n, n)))
    return known.innovations(x) @ lower, lower.T @ steady


def delays(u: np.ndarray, basis: np.ndarray, clean_u: np.ndarray, calib_u: np.ndarray | None,
           order: int, h: float | None = None, shortest: int = 1,
           clip: float = math.inf) -> dict[str, int | None]:
    """Delay of the GLR on u projected on ``basis`` (orthonormal columns), its threshold ``h``
    or from the line's own drift-free rows ``calib_u``; alarms before the change and on the
    drift-free stream ``clean_u`` (another seed)."""
    if h is None:
        assert calib_u is not None
        h = tail_level(glr(calib_u @ basis), oracle.WEEK_AT_1HZ)
    u, clean_u = np.clip(u, -clip, clip), np.clip(clean_u, -clip, clip)
    fired = episodes(glr(u @ basis, shortest), h) + order  # the innovations start at row p
    after = fired[fired >= dc.CHANGE]
    return {"delay": int(after[0] - dc.CHANGE) if len(after) else None,
            "before": int((fired < dc.CHANGE).sum()),
            "clean": len(episodes(glr(clean_u @ basis, shortest), h)),
            "k": basis.shape[1], "h": round(h, 2)}


def one(shape: Shape, seed: int) -> dict[str, object]:
    line = line_for(shape, seed)
    history = line.stream("clean", dc.HISTORY, 0, seed=seed * 1000 + 1)
    stream_seed = seed * 1000 + 10 + dc.CASES.index("mean_shift")
    stream = line.stream("mean_shift", dc.CHANGE + dc.HORIZON, dc.CHANGE, seed=stream_seed)
    clean = line.stream("clean", dc.CHANGE + dc.HORIZON, dc.CHANGE, seed=stream_seed)
    drift_free = line.stream("clean", 50_000, dc.CHANGE, seed=seed * 1000 + 10 + dc.CASES.index("clean"))
    delta = oracle.known_shift(stream.x, clean.x, dc.CHANGE)
    known = oracle.fit(history.x, dc.FIT, delta)
    best, _ = oracle.delay(known, stream.x, dc.CHANGE)
    u, shift_map = whitened(known, stream.x)
    clean_u, _ = whitened(known, drift_free.x)
    u_ref, _ = whitened(known, history.x[dc.FIT - known.order:])  # the held-out rows
    calib_u, _ = whitened(known, line.stream("clean", CALIBRATION_ROWS, dc.CHANGE, seed=seed * 1000 + 99).x)
    moved = np.flatnonzero(np.abs(delta[known.keep]) > 1e-6 * known.scale)
    basis, _ = np.linalg.qr(shift_map[:, moved])
    eye = np.eye(u.shape[1])
    robust_h = held_out_level(u_ref, dc.FIT, shortest=ROBUST_SHORTEST, clip=pooled.OUTLIER)
    return {"line": f"{shape.name} {seed}", "oracle": best,
            "set_known": delays(u, basis, clean_u, calib_u, known.order),
            "blind": delays(u, eye, clean_u, calib_u, known.order),
            "blind_held_out": delays(u, eye, clean_u, None, known.order, held_out_level(u_ref, dc.FIT)),
            "robust_held_out": delays(u, eye, clean_u, None, known.order, robust_h, ROBUST_SHORTEST,
                                      pooled.OUTLIER)}


def main() -> None:
    sets = dc.groups()
    if len(sys.argv) > 1 and ":" in sys.argv[1]:  # a slice of the sets, e.g. 0:20
        first, last = (int(i) for i in sys.argv[1].split(":"))
        chosen = sets[first:last]
    else:
        names = sys.argv[1].split(";") if len(sys.argv) > 1 else None
        chosen = [(t, lines) for t, lines in sets if names is None or any(n in t for n in names)]
    for name, lines in chosen:
        runs = []
        for shape, seed in lines:
            runs.append(one(shape, seed))
            print(json.dumps(runs[-1]), flush=True)
        for who in ("set_known", "blind", "blind_held_out", "robust_held_out"):
            found = [r[who]["delay"] for r in runs if r[who]["delay"] is not None]  # type: ignore[index]
            print(json.dumps({"set": name, "who": who, "median": statistics.median(found) if found else None,
                              "missed": len(runs) - len(found),
                              "false_alarms": sum(r[who]["before"] + r[who]["clean"] for r in runs)}))  # type: ignore[index]
        best = [r["oracle"] for r in runs if r["oracle"] is not None]
        print(json.dumps({"set": name, "who": "oracle", "median": statistics.median(best) if best else None}))


if __name__ == "__main__":
    main()
