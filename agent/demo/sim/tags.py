"""Synthetic plant tag streams for storage tests and benchmarks."""

from __future__ import annotations

import time

import numpy as np

from agent.types import Quality, Reading


def plant_readings(n_tags: int, seconds: int, seed: int = 0) -> list[Reading]:
    """Readings as a PLC delivers them: sensor resolution, a few ms of jitter, slow drift."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(10, 500, n_tags)
    level = base.copy()
    t0 = time.time()
    out = []
    for s in range(seconds):
        level += rng.normal(0, 0.02, n_tags) * base / 100
        for k in range(n_tags):
            resolution = 0.1 if k % 3 else 0.01
            value = round(float(level[k] + rng.normal(0, base[k] / 1000)) / resolution) * resolution
            ts = t0 + s + k * 0.0005 + rng.uniform(0, 0.003)
            out.append(Reading("plc", f"Line1.Machine.Tag{k:03d}", value, ts, ts + 0.004, Quality.GOOD))
    return out
