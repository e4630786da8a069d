"""A ratio of two rates from alternating pairs of short stretches, robust to a shared machine.

Timing a baseline and a candidate in two long stretches one after the other lets a neighbour's
burst of CPU land on one and not the other: on the 2-core development machine the pipeline's
ratio moved from 0.40 to 0.75 between runs with no code change. Here each pair times a short
stretch of each side back to back, the order swapped every pair (so a load that rises or falls
through the run hits both sides alike), and the figure is the median of the pairs' ratios, with
their lowest and highest so that the spread is visible. A pair that a burst hit is one outlier
among many, which the median ignores.

The ratio by CPU time (the process's, every thread of it: the outbox writes in a thread of its
own) is given beside the wall clock's: the other processes on the machine do not move it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

Stretch = Callable[[], Awaitable[int]]  # runs a short stretch of work, returns the units it did
Clock = Callable[[], float]


@dataclass(frozen=True)
class Spread:
    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))


@dataclass(frozen=True)
class PairedRatio:
    """candidate rate / baseline rate, one value per pair, by wall clock and by CPU time."""

    wall: Spread
    cpu: Spread
    pairs: int
    candidate_rate: float  # units per wall-clock second over all the pairs' candidate stretches
    baseline_rate: float


async def paired_ratio(baseline: Stretch, candidate: Stretch, pairs: int, warmup: int = 1,
                       wall_clock: Clock = time.perf_counter,
                       cpu_clock: Clock = time.process_time) -> PairedRatio:
    """Run `pairs` pairs of (baseline, candidate) stretches, baseline first in even pairs and
    candidate first in odd ones, after `warmup` pairs that are not counted (caches, allocators
    and the first flush of an empty outbox)."""
    if pairs < 1:
        raise ValueError(f"pairs must be at least 1, not {pairs}")
    wall: list[float] = []
    cpu: list[float] = []
    totals = {"baseline": [0.0, 0.0], "candidate": [0.0, 0.0]}  # units, wall seconds
    for index in range(-warmup, pairs):
        sides = (("baseline", baseline), ("candidate", candidate))
        rates: dict[str, tuple[float, float]] = {}
        for name, stretch in sides if index % 2 == 0 else sides[::-1]:
            wall_start, cpu_start = wall_clock(), cpu_clock()
            units = await stretch()
            wall_s, cpu_s = wall_clock() - wall_start, cpu_clock() - cpu_start
            rates[name] = (units / wall_s, units / cpu_s)
            if index >= 0:
                totals[name][0] += units
                totals[name][1] += wall_s
        if index >= 0:
            wall.append(rates["candidate"][0] / rates["baseline"][0])
            cpu.append(rates["candidate"][1] / rates["baseline"][1])
    return PairedRatio(Spread.of(wall), Spread.of(cpu), pairs,
                       totals["candidate"][0] / totals["candidate"][1],
                       totals["baseline"][0] / totals["baseline"][1])
