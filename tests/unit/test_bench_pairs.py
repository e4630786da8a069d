"""bench/pairs.py on a fake machine whose clocks only move when a stretch says so: the ratio of
each pair, the order swapped every pair, the warm-up left out, and a burst of a neighbour's
load that moves one pair's wall-clock ratio and neither the median nor the CPU-time ratio; with
stretches that time their parts themselves (paired_ratios), a ratio per part from its own seconds."""

from __future__ import annotations

import asyncio

import pytest

from bench.pairs import PairedRatio, Stretch, TimedStretch, Timings, paired_ratio, paired_ratios


class FakeMachine:
    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0
        self.calls: list[str] = []
        self.stolen: dict[int, float] = {}  # call number -> wall seconds another process took

    def stretch(self, name: str, units: int, seconds: float,
                first_seconds: float | None = None) -> Stretch:
        async def run() -> int:
            first = name not in self.calls
            took = first_seconds if first and first_seconds is not None else seconds
            self.wall += took + self.stolen.get(len(self.calls), 0.0)
            self.cpu += took
            self.calls.append(name)
            return units
        return run

    def measure(self, baseline: Stretch, candidate: Stretch, pairs: int,
                warmup: int = 0) -> PairedRatio:
        return asyncio.run(paired_ratio(baseline, candidate, pairs, warmup,
                                        wall_clock=lambda: self.wall, cpu_clock=lambda: self.cpu))


def test_each_pair_gives_the_candidate_rate_over_the_baseline_rate() -> None:
    machine = FakeMachine()
    result = machine.measure(machine.stretch("bare", 600, 1.0), machine.stretch("pipe", 200, 0.5),
                             pairs=3)
    assert (result.wall.median, result.wall.low, result.wall.high) == (400 / 600,) * 3
    assert result.cpu.median == pytest.approx(400 / 600)
    assert (result.pairs, result.baseline_rate, result.candidate_rate) == (3, 600.0, 400.0)


def test_the_order_is_swapped_every_pair() -> None:
    machine = FakeMachine()
    machine.measure(machine.stretch("bare", 1, 1.0), machine.stretch("pipe", 1, 1.0), pairs=4)
    assert machine.calls == ["bare", "pipe", "pipe", "bare", "bare", "pipe", "pipe", "bare"]


def test_warmup_pairs_run_and_are_not_counted() -> None:
    machine = FakeMachine()
    result = machine.measure(machine.stretch("bare", 100, 1.0),
                             machine.stretch("pipe", 100, 2.0, first_seconds=20.0), pairs=3,
                             warmup=1)
    assert len(machine.calls) == 8
    assert (result.wall.low, result.wall.high) == (0.5, 0.5)
    assert result.candidate_rate == 50.0


def test_a_burst_of_other_load_moves_one_pair_and_not_the_median_nor_the_cpu_ratio() -> None:
    machine = FakeMachine()
    machine.stolen = {5: 3.0}  # the third pair's pipeline stretch loses 3 s to another process
    result = machine.measure(machine.stretch("bare", 100, 1.0), machine.stretch("pipe", 100, 1.0),
                             pairs=5)
    assert machine.calls[4:6] == ["bare", "pipe"]
    assert result.wall.median == 1.0  # a mean of the pairs would be 0.85
    assert (result.wall.low, result.wall.high) == (0.25, 1.0)
    assert (result.cpu.low, result.cpu.high) == (1.0, 1.0)


def test_no_pairs_is_refused() -> None:
    machine = FakeMachine()
    with pytest.raises(ValueError, match="pairs"):
        machine.measure(machine.stretch("b", 1, 1.0), machine.stretch("c", 1, 1.0), pairs=0)


def timed_stretch(per_call: list[dict[str, tuple[float, float, float]]]) -> TimedStretch:
    """A stretch whose parts took the given (units, wall, CPU seconds), one dict per call."""
    calls = iter(per_call)

    async def run() -> Timings:
        return next(calls)
    return run


def test_each_part_gets_its_own_ratio_from_its_own_seconds_not_the_stretchs() -> None:
    # two models in one stretch: the second takes three times the first's time per sample
    pipe = {"a": (100.0, 1.0, 1.0), "b": (100.0, 3.0, 3.0)}
    bare = {"a": (100.0, 0.5, 0.5), "b": (300.0, 1.0, 1.0)}
    result = asyncio.run(paired_ratios(timed_stretch([bare] * 3), timed_stretch([pipe] * 3),
                                       pairs=2, warmup=1))
    assert result.keys() == {"a", "b"}
    assert result["a"].wall.median == 0.5
    assert result["b"].wall.median == pytest.approx(1 / 9)
    assert (result["b"].candidate_rate, result["b"].baseline_rate) == (100 / 3, 300.0)


def test_a_burst_in_one_parts_pair_moves_that_parts_low_only() -> None:
    calm = {"a": (100.0, 1.0, 1.0), "b": (100.0, 1.0, 1.0)}
    burst = {"a": (100.0, 4.0, 1.0), "b": (100.0, 1.0, 1.0)}  # a neighbour took 3 s of a's
    result = asyncio.run(paired_ratios(timed_stretch([calm] * 5),
                                       timed_stretch([calm, burst, calm, calm, calm]), pairs=5,
                                       warmup=0))
    assert (result["a"].wall.median, result["a"].wall.low) == (1.0, 0.25)
    assert (result["a"].cpu.low, result["b"].wall.low) == (1.0, 1.0)
    assert result["a"].candidate_rate == 500 / 8


def test_sides_that_time_different_parts_are_refused() -> None:
    with pytest.raises(ValueError, match="timed"):
        asyncio.run(paired_ratios(timed_stretch([{"a": (1.0, 1.0, 1.0)}]),
                                  timed_stretch([{"b": (1.0, 1.0, 1.0)}]), pairs=1, warmup=0))
