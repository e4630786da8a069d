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

paired_ratios does the same for stretches that time their parts themselves and give a ratio per
part: several models on one gateway, each model's time its own work plus a share of theirs.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

Stretch = Callable[[], Awaitable[int]]  # runs a short stretch of work, returns the units it did
Timings = Mapping[str, tuple[float, float, float]]  # part -> units, wall and CPU seconds it took
TimedStretch = Callable[[], Awaitable[Timings]]  # a stretch that times its parts itself
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
    def timed(stretch: Stretch) -> TimedStretch:
        async def run() -> Timings:
            wall_start, cpu_start = wall_clock(), cpu_clock()
            units = await stretch()
            return {"": (units, wall_clock() - wall_start, cpu_clock() - cpu_start)}
        return run
    return (await paired_ratios(timed(baseline), timed(candidate), pairs, warmup))[""]


async def paired_ratios(baseline: TimedStretch, candidate: TimedStretch, pairs: int,
                        warmup: int = 1) -> dict[str, PairedRatio]:
    """paired_ratio for stretches that time their parts themselves: several models on one
    gateway run in one stretch, each timed around its own work with a share of the work they
    share, so a model's time is not the stretch's. Each part's ratio in a pair is its candidate
    rate over its baseline rate in that pair; both sides must time the same parts."""
    if pairs < 1:
        raise ValueError(f"pairs must be at least 1, not {pairs}")
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    totals: dict[tuple[str, str], list[float]] = {}  # (side, part) -> units, wall seconds
    for index in range(-warmup, pairs):
        sides = (("baseline", baseline), ("candidate", candidate))
        timings = {name: await stretch() for name, stretch in
                   (sides if index % 2 == 0 else sides[::-1])}
        if timings["baseline"].keys() != timings["candidate"].keys():
            raise ValueError(f"the baseline timed {sorted(timings['baseline'])}, the candidate "
                             f"{sorted(timings['candidate'])}")
        if index < 0:
            continue
        for part, (units, wall_s, cpu_s) in timings["candidate"].items():
            base_units, base_wall_s, base_cpu_s = timings["baseline"][part]
            wall.setdefault(part, []).append(units / wall_s / (base_units / base_wall_s))
            cpu.setdefault(part, []).append(units / cpu_s / (base_units / base_cpu_s))
            for side in ("candidate", "baseline"):
                total = totals.setdefault((side, part), [0.0, 0.0])
                total[0] += timings[side][part][0]
                total[1] += timings[side][part][1]
    return {part: PairedRatio(Spread.of(wall[part]), Spread.of(cpu[part]), pairs,
                              totals["candidate", part][0] / totals["candidate", part][1],
                              totals["baseline", part][0] / totals["baseline", part][1])
            for part in wall}
