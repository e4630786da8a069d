"""Streams of a process line the project has not seen: bench/drift_cases.py judges the monitor on them.

Its own generator, unrelated to the demo's simulated machine (agent/demo/sim): tags are sums of
latent factors shared by a group of tags (AR(1), so neighbouring rows are alike and tags of a
group move together), an AR(1) wander of each tag's own and white measurement noise; each tag has
its own operating point and spread. The quality (NOK) depends on a few tags and one interaction
through a noisy threshold. A *shape* fixes the structure (how many tags, which share factors, how
slowly they wander, which tags matter); a *seed* draws everything else.

Cases (the change starts at row ``change``; rows are 1 s apart):
  mean_shift     a few tags move by 0.5-0.7 of their standard deviation, abruptly
  variance       a few tags' spread grows to 2-3x its variance over ``ramp`` rows (tool wear)
  correlation    a tag loses its tie to its group; its own distribution stays the same
  concept        the relation between tags and quality changes; the tags stay the same
  clean          no change at all
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.line_shapes import OTHER, Shape

T0 = 1_750_000_000.0  # epoch seconds of the first row


@dataclass
class Stream:
    x: np.ndarray  # (rows, tags) in engineering units
    nok: np.ndarray  # (rows,) bool
    names: list[str]
    change: int | None  # first changed row, None for clean streams

    @property
    def timestamps(self) -> np.ndarray:
        return T0 + np.arange(len(self.x), dtype=np.float64)

    def write_csv(self, path: Path, label_share: float = 1.0, seed: int = 0, first: int = 0) -> (
            np.ndarray):
        """timestamp, the tags, label (blank where the QC did not look); returns the mask of
        labelled rows. ``first``: the row number of the first row (its timestamp)."""
        rng = np.random.default_rng(seed)
        labelled = rng.random(len(self.x)) < label_share
        with path.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["timestamp", *self.names, "label"])
            for i, row in enumerate(self.x):
                label = ("NOK" if self.nok[i] else "OK") if labelled[i] else ""
                w.writerow([f"{T0 + first + i:.0f}", *(f"{v:.5g}" for v in row), label])
        return labelled


def _ar1(rng: np.random.Generator, rows: int, cols: int, rho: float) -> np.ndarray:
    """AR(1) columns with unit stationary variance, started in their stationary law."""
    e = rng.standard_normal((rows, cols)) * np.sqrt(1 - rho * rho)
    out = np.empty((rows, cols))
    out[0] = rng.standard_normal(cols)
    for t in range(1, rows):
        out[t] = rho * out[t - 1] + e[t]
    return out


class Line:
    """One line of a shape: operating points, spreads and the quality rule, drawn from ``seed``."""

    def __init__(self, shape: Shape, seed: int) -> None:
        self.shape = shape
        rng = np.random.default_rng(10_000 + seed)
        self.mean = rng.uniform(20, 900, shape.tags).round(1)
        self.sd = self.mean * rng.uniform(0.005, 0.03, shape.tags)
        self.names = [f"tag_{i:02d}" for i in range(shape.tags)]
        self.weights = rng.uniform(0.6, 1.2, len(shape.quality)) * rng.choice([-1, 1], len(shape.quality))
        self.weights_after = rng.uniform(0.6, 1.2, len(shape.after_concept)) * rng.choice(
            [-1, 1], len(shape.after_concept))
        self.group_of = {t: g for g, members in enumerate(shape.groups) for t in members}
        self.threshold = self._threshold(rng)

    def _factors(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        """The latent factors shared by a group: AR(1) of unit variance."""
        return _ar1(rng, rows, cols, self.shape.factor_rho)

    def _noise(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        return rng.standard_normal(size)

    def _risk(self, z: np.ndarray, tags: tuple[int, ...], w: np.ndarray) -> np.ndarray:
        risk = z[:, list(tags)] @ w
        return np.asarray(risk + 0.5 * z[:, tags[0]] * z[:, tags[1]])

    def _threshold(self, rng: np.random.Generator) -> float:
        z = rng.standard_normal((20_000, self.shape.tags))
        risk = self._risk(z, self.shape.quality, self.weights)
        risk = risk / risk.std() + self.shape.label_noise * rng.standard_normal(len(z))
        return float(np.quantile(risk, 1 - self.shape.nok_rate))

    def stream(self, kind: str, rows: int, change: int, seed: int) -> Stream:
        """A stream of ``rows`` rows with change ``kind`` from row ``change`` ('clean': none)."""
        s = self.shape
        rng = np.random.default_rng(seed)
        factors = self._factors(rng, rows, max(1, len(s.groups)))
        wander = _ar1(rng, rows, s.tags, s.wander_rho)
        noise = self._noise(rng, (rows, s.tags))
        z = np.empty((rows, s.tags))
        fa, wa, na = (np.sqrt(v) for v in s.shares)
        for t in range(s.tags):
            g = self.group_of.get(t)
            if g is None:  # no group: its own wander and noise only
                share = s.shares[0] + s.shares[1]
                z[:, t] = np.sqrt(share) * wander[:, t] + na * noise[:, t]
            else:
                z[:, t] = fa * factors[:, g] + wa * wander[:, t] + na * noise[:, t]
        scaled = z.copy()  # what the sensors show; z stays the process the quality follows
        if kind == "mean_shift":
            size = rng.uniform(0.5, 0.7)
            scaled[change:, list(s.shift_tags)] += size
        elif kind == "variance":
            ratio = rng.uniform(2.0, 3.0)  # final variance ratio
            ramp = 500
            grow = np.clip((np.arange(rows) - change) / ramp, 0.0, 1.0)
            factor = np.sqrt(1 + (ratio - 1) * grow)[:, None]
            scaled[:, list(s.variance_tags)] *= factor
        elif kind == "correlation":
            # the same law (same autocorrelation, same variance), no longer tied to the group
            lone = self._factors(rng, rows, 1)[:, 0]
            t = s.broken_tag
            scaled[change:, t] = fa * lone[change:] + wa * wander[change:, t] + na * noise[change:, t]
        risk_before = self._risk(z, s.quality, self.weights)
        risk = risk_before
        if kind == "concept":
            # a new relation: partly the reverse of the old one, partly other tags
            new = self._risk(z, s.after_concept, self.weights_after)
            after = -0.6 * risk_before / risk_before.std() + 0.8 * new / new.std()
            risk = np.where(np.arange(rows) >= change, after / after.std() * risk_before.std(), risk_before)
        # a process that shifts changes the parts too: the quality follows what the tags show
        if kind in ("mean_shift", "variance"):
            risk = self._risk(scaled, s.quality, self.weights)
        risk = risk / risk_before.std() + s.label_noise * rng.standard_normal(rows)
        nok = risk > self.threshold
        x = self.mean + self.sd * scaled
        return Stream(x, nok, self.names, None if kind == "clean" else change)


class LoopLine(Line):
    """Another generator: tags of a group follow a control loop that rings (an AR(2) factor
    with complex roots of modulus ``factor_rho`` and a period of ``extra['period']`` rows),
    and the measurement noise is heavy-tailed (Student t with ``extra['noise_df']`` degrees of
    freedom, unit variance; or Laplace with ``extra['noise'] = 'laplace'``). The rest (own
    wander, operating points, quality, cases) as Line."""

    def _factors(self, rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
        r, period = self.shape.factor_rho, float(self.shape.extra.get("period", 45.0))
        a1, a2 = 2 * r * np.cos(2 * np.pi / period), -r * r
        burn = 500  # started far enough back to be in its stationary law
        e = rng.standard_normal((rows + burn, cols))
        out = np.zeros((rows + burn, cols))
        for t in range(2, rows + burn):
            out[t] = a1 * out[t - 1] + a2 * out[t - 2] + e[t]
        # stationary variance of an AR(2): (1 - a2) / ((1 + a2) ((1 - a2)^2 - a1^2))
        var = (1 - a2) / ((1 + a2) * ((1 - a2) ** 2 - a1 * a1))
        return np.asarray(out[burn:] / np.sqrt(var))

    def _noise(self, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
        if self.shape.extra.get("noise") == "laplace":  # unit variance: scale 1/sqrt(2)
            return np.asarray(rng.laplace(0.0, 1 / np.sqrt(2), size))
        df = float(self.shape.extra.get("noise_df", 5.0))
        return np.asarray(rng.standard_t(df, size) / np.sqrt(df / (df - 2)))


class VarLine(Line):
    """A third generator: the tags are one coupled VAR(1) process, x_t = A x_(t-1) + e_t (each
    tag driven by its own past and two or three others', spectral radius ``factor_rho``, the
    innovations correlated), no latent groups; every sensor shows its value rounded to a decimal
    resolution of about a fifth of its spread or finer; with ``extra['setpoint'] = j`` tag j is a
    setpoint that never moves. The quality is drawn at random, NOK with probability
    sigmoid((risk - c) / s), rather than a noisy threshold. The cases change what they change in
    Line; the broken tag takes its values from an independent run of the same VAR (its own law
    and autocorrelation exactly, its ties gone)."""

    def __init__(self, shape: Shape, seed: int) -> None:
        super().__init__(shape, seed)
        rng = np.random.default_rng(20_000 + seed)
        n = shape.tags
        coupling = np.eye(n) * rng.uniform(0.4, 0.9, n)
        for i in range(n):
            others = rng.choice([j for j in range(n) if j != i], size=int(rng.integers(2, 4)),
                                replace=False)
            coupling[i, others] = rng.uniform(-0.5, 0.5, len(others))
        radius = float(np.abs(np.linalg.eigvals(coupling)).max())
        self.a = coupling * (shape.factor_rho / radius)
        mix = np.tril(rng.uniform(-0.6, 0.6, (n, n)), -1) + np.eye(n)
        self.chol = mix / np.linalg.norm(mix, axis=1, keepdims=True)
        cov = self.chol @ self.chol.T
        for _ in range(400):  # the stationary covariance: cov = A cov A' + Q
            cov = self.a @ cov @ self.a.T + self.chol @ self.chol.T
        self.sd_z = np.sqrt(np.diag(cov))
        self.resolution = 10.0 ** np.floor(np.log10(self.sd * rng.uniform(0.02, 0.2, n)))
        z = self._var(rng, 20_000)  # the risks' scales and the NOK rate from a long clean run
        self.scales = {"before": float(self._risk(z, shape.quality, self.weights).std()),
                       "after": float(self._risk(z, shape.after_concept, self.weights_after).std())}
        self.c = float(np.quantile(self._risk_std(z), 1 - shape.nok_rate))

    def _var(self, rng: np.random.Generator, rows: int) -> np.ndarray:
        """A run of the VAR in units of each tag's stationary spread, started in its law."""
        burn = 300
        e = rng.standard_normal((rows + burn, self.shape.tags)) @ self.chol.T
        out = np.zeros_like(e)
        for t in range(1, rows + burn):
            out[t] = self.a @ out[t - 1] + e[t]
        return np.asarray(out[burn:] / self.sd_z)

    def _risk_std(self, z: np.ndarray, after: bool = False) -> np.ndarray:
        """The quality risk (before or after the concept change) in units of its clean spread."""
        if after:
            return np.asarray(self._risk(z, self.shape.after_concept, self.weights_after)
                              / self.scales["after"])
        return np.asarray(self._risk(z, self.shape.quality, self.weights) / self.scales["before"])

    def stream(self, kind: str, rows: int, change: int, seed: int) -> Stream:
        s = self.shape
        rng = np.random.default_rng(seed)
        z = self._var(rng, rows)
        setpoint = int(s.extra["setpoint"]) if "setpoint" in s.extra else None
        if setpoint is not None:
            z[:, setpoint] = 0.0
        scaled = z.copy()
        if kind == "mean_shift":
            scaled[change:, list(s.shift_tags)] += rng.uniform(0.5, 0.7)
        elif kind == "variance":
            ratio = rng.uniform(2.0, 3.0)
            grow = np.clip((np.arange(rows) - change) / 500, 0.0, 1.0)
            scaled[:, list(s.variance_tags)] *= np.sqrt(1 + (ratio - 1) * grow)[:, None]
        elif kind == "correlation":
            scaled[change:, s.broken_tag] = self._var(rng, rows)[change:, s.broken_tag]
        risk = self._risk_std(scaled if kind in ("mean_shift", "variance") else z)
        if kind == "concept":
            before = self._risk_std(z)
            after = -0.6 * before + 0.8 * self._risk_std(z, after=True)
            risk = np.where(np.arange(rows) >= change, after / after[:change].std(), before)
        nok = rng.random(rows) < 1 / (1 + np.exp(-(risk - self.c) / s.label_noise))
        x = self.mean + self.sd * scaled
        x = np.round(x / self.resolution) * self.resolution
        return Stream(x, nok, self.names, None if kind == "clean" else change)


def line_for(shape: Shape, seed: int) -> Line:
    """The line of a shape, from its own generator."""
    if shape.extra.get("generator") == "var":
        return VarLine(shape, seed)
    return LoopLine(shape, seed) if shape in OTHER or "period" in shape.extra else Line(shape, seed)
