"""Each model's pipeline with 1 and 3 models on one gateway, against bare onnxruntime on the
same model and inputs at batch 64 in the same run, on one core. Goal: every model's ratio >= 0.5
(as bench.pipeline's figure for one model: rows -> inference -> outputs -> outbox).

Figures, per model (`per_model`): `ratio`, the median of the pairs' ratios by wall clock, with
`ratio_min` / `ratio_max` and `pairs`; `ratio_cpu_time` (and its min and max), the same by the
process's CPU time; `samples_per_s` / `bare_samples_per_s` over all the pairs. Per line,
`min_ratio` and `min_ratio_cpu_time` over the models.

The three models are of the size bench.pipeline measures (a ridge or logistic model infers 64
rows in 15 us, which no Python pipeline matches): moulding-nok, gradient boosting (60 trees) on
every process tag; cycle-time, a gradient boosting regressor (60 trees) on the cycle time's
tags; nok-barrel, a random forest (50 trees) on the barrel temperatures, pressure and cushion.

A model's pipeline is what its unit does with a batch: inference through its lifecycle,
predictions to the sinks and the outbox recorder (and with monitoring on, its drift monitors and
pending-label table). Two starting points, as in bench.pipeline: feature rows (a SampleBatch per
model), and single tag readings through the intake, the fan-out to every model's channel and
each model's feature builder.

Timing, as bench.pipeline's (bench/pairs.py): 9 pairs (3 with BENCH_QUICK) after a warm-up
pair, of one stretch of the gateway's pipeline and one of bare `session.run`, each one outbox
flush period long, the order swapped every pair. In the pipeline's stretch every model runs
blocks of 20 batches in turns; a model's time is what is timed around its own unit plus an even
share (1/number of models) of the work the models share: the intake and fan-out of each batch
of readings, and every outbox flush. In the bare stretch each model's session runs 20 batches in
turns, timed around it. A model's ratio in a pair is its pipeline rate over its bare rate.

    python -m bench.pipeline_models    (python -m bench pipeline: after bench.pipeline; make bench)
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import parse_config
from agent.demo.sim.process import COUNTER_TAG, CYCLE_INPUTS, PROCESS_TAGS, full_history
from agent.inference.batches import SampleBatch
from agent.models.builder import build_bundle
from agent.models.bundle import generate_keypair
from agent.models.training import train_onnx, write_csv
from agent.service.agent import Agent
from agent.service.unit import ModelUnit
from agent.store.outbox import AsyncOutbox
from agent.types import Reading
from bench.common import emit, one_thread_session, pin_to_one_core, release, scratch_dir
from bench.models3 import BARREL_MODEL, BARREL_TAGS
from bench.pairs import PairedRatio, Timings, paired_ratios
from bench.pipeline import BATCH, BLOCK, PAIRS, STRETCH_S


def bench_entries(work: Path) -> list[dict[str, Any]]:
    """The three models above as `models:` entries with signed bundles."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier

    generate_keypair(work / "k.pem", work / "k.pub")
    x, _, y, cycle = full_history(3000, seed=1)
    x = x.astype(np.float32)
    quality = train_onnx(x, y, work / "quality.onnx", kind="gbt")
    cols = [PROCESS_TAGS.index(t) for t in CYCLE_INPUTS]
    gbr = GradientBoostingRegressor(n_estimators=60, max_depth=3, random_state=0).fit(x[:, cols], cycle)
    (work / "cycle.onnx").write_bytes(to_onnx(gbr, x[:1, cols], target_opset=17).SerializeToString())
    barrel_cols = [PROCESS_TAGS.index(t) for t in BARREL_TAGS]
    rf = RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(x[:, barrel_cols], y)
    (work / "barrel.onnx").write_bytes(to_onnx(rf, x[:1, barrel_cols], target_opset=17, options={
        id(rf): {"zipmap": False}}).SerializeToString())
    entries = []
    for name, model, tags, label in (("moulding-nok", quality, PROCESS_TAGS, y),
                                     ("cycle-time", work / "cycle.onnx", CYCLE_INPUTS, cycle),
                                     (BARREL_MODEL, work / "barrel.onnx", BARREL_TAGS, y)):
        csv = work / f"{name}.csv"
        idx = [PROCESS_TAGS.index(t) for t in tags]
        write_csv(csv, x[:, idx], list(tags), np.asarray([str(v) for v in label]))
        build_bundle(model, csv, "label", name, "1", work / name, signing_key=work / "k.pem",
                     positive_class="NOK" if label is y else None)
        entries.append({"name": name, "bundle": str(work / name), "trusted_keys": [str(work / "k.pub")]})
    return entries


def agent_of(entries: list[dict[str, Any]], state: Path, monitored: bool) -> Agent:
    cfg = parse_config({
        "gateway_id": "bench", "state_dir": str(state),
        "sources": [{"type": "mqtt", "name": "none", "broker": {"host": "127.0.0.1"},
                     "topics": [{"topic": "x", "tags": [{"tag": t} for t in [*PROCESS_TAGS, COUNTER_TAG]]}]}],
        "features": {"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 1e9},
        "models": [{**{k: v for k, v in e.items() if k != "labels"}, "batch_max": BATCH} for e in entries],
        "outputs": {"mqtt": {"broker": {"host": "127.0.0.1", "port": 1}, "queue_size": 10_000}},
        "monitoring": {"enabled": monitored},
        "health": {"enabled": False},
    })
    return Agent(cfg)


def rows_of(unit: ModelUnit, x: np.ndarray) -> np.ndarray:
    assert unit.model is not None
    return np.ascontiguousarray(x[:BATCH, [PROCESS_TAGS.index(t) for t in unit.model.input_tags]])


async def unit_ratios(entries: list[dict[str, Any]], x: np.ndarray, from_readings: bool,
                      monitored: bool) -> dict[str, PairedRatio]:
    """Each model's pipeline against bare onnxruntime on its model, all models in one agent, in
    pairs of stretches (bench.pairs.paired_ratios): one stretch runs the gateway's pipeline, the
    other every model's bare session in turns, each model timed around its own work."""
    state = scratch_dir("bench-models-")
    agent = agent_of(entries, state, monitored)
    async with AsyncOutbox(state / "outbox.db", 1 << 34) as outbox:
        agent.outbox = outbox
        agent.recorder.outbox = outbox
        await agent._load_initial_model()
        units = agent.units
        share = 1.0 / len(units)  # of the work the models share: intake, fan-out, outbox flush
        rows = {u.name: rows_of(u, x) for u in units}
        now = time.time()
        ids = [[str(k * BATCH + i) for i in range(BATCH)] for k in range(2)]
        # the starting point is feature rows ready (SampleBatch), as in bench.pipeline: the
        # feature stage made them; two batches of other sample ids, taken in turns
        ready_batches = {u.name: [SampleBatch(i, np.full(BATCH, now), rows[u.name]) for i in ids]
                         for u in units}
        batches: list[list[Reading]] = []
        if from_readings:  # counters 1..64 and 65..128: every counter reading is a new part
            for b in range(2):
                batch = []
                for i, row in enumerate(x[:BATCH].tolist()):
                    batch += [Reading("plc", t, v, now, now) for t, v in zip(PROCESS_TAGS, row, strict=True)]
                    batch.append(Reading("plc", COUNTER_TAG, float(b * BATCH + i + 1), now, now))
                batches.append(batch)
            agent.offer(Reading("plc", COUNTER_TAG, 0.0, now, now))
            for unit in units:
                unit.process_now()
        bare = {u.name: bare_session(u, rows[u.name]) for u in units}
        counter = 0  # batches every model has had, over all the pipeline's stretches

        async def flush(spent: dict[str, np.ndarray]) -> None:
            t = stamp()
            await agent._flush()
            for name in spent:
                spent[name] += (stamp() - t) * share

        async def run_pipeline() -> Timings:
            nonlocal counter
            spent = {u.name: np.zeros(2) for u in units}  # (wall, CPU) seconds
            first = counter
            start = last_flush = time.perf_counter()
            flushed = True
            while time.perf_counter() - start < STRETCH_S:
                if from_readings:
                    for _ in range(BLOCK):
                        t = stamp()
                        for r in batches[counter % 2]:
                            agent.offer(r)
                        shared = stamp() - t
                        for unit in units:
                            t = stamp()
                            unit.process_now()
                            spent[unit.name] += stamp() - t + shared * share
                        counter += 1
                else:
                    for unit in units:
                        ready = ready_batches[unit.name]
                        t = stamp()
                        for k in range(BLOCK):
                            samples = ready[(counter + k) % 2]
                            unit._settle(samples, unit._compute(samples))
                        spent[unit.name] += stamp() - t
                    counter += BLOCK
                flushed = time.perf_counter() - last_flush >= agent.config.outbox.flush_interval_s
                if flushed:  # the flusher's schedule
                    await flush(spent)
                    last_flush = time.perf_counter()
            if not flushed:
                await flush(spent)
            n = (counter - first) * BATCH
            return {name: (n, *s) for name, s in spent.items()}

        async def run_bare() -> Timings:  # every model's session in turns, on the same rows
            spent = {u.name: np.zeros(2) for u in units}
            n, start = 0, time.perf_counter()
            while time.perf_counter() - start < STRETCH_S:
                for name, (session, names, feed) in bare.items():
                    t = stamp()
                    for _ in range(BLOCK):
                        session.run(names, feed)
                    spent[name] += stamp() - t
                n += BLOCK * BATCH
            return {name: (n, *s) for name, s in spent.items()}

        ratios = await paired_ratios(run_bare, run_pipeline, PAIRS)
        for unit in units:
            assert unit.predictions == counter * BATCH, (unit.name, unit.predictions, counter)
        for unit in units:
            unit.close()
    release(state)
    return ratios


def stamp() -> np.ndarray:
    """(wall clock, CPU time of the process): on a shared machine the wall clock also counts
    the time other processes took the core, the CPU time only this process's own work (the
    outbox writer's thread included); both are reported."""
    return np.array((time.perf_counter(), time.process_time()))


def bare_session(unit: ModelUnit, rows: np.ndarray) -> tuple[Any, list[str], dict[str, np.ndarray]]:
    """A plain onnxruntime session of the unit's model file, one thread, as bench.pipeline's."""
    assert unit.model is not None
    session = one_thread_session(unit.model.bundle.model_path)
    feed = {session.get_inputs()[0].name: rows}
    return session, [o.name for o in session.get_outputs()], feed


CASES = (  # (start, monitored, goal)
    ("rows", False, ">= 0.5"),
    ("rows", True, "(no goal; shows what monitoring costs)"),
    ("readings", True, "(no goal; a line gives far fewer)"),
)


def main() -> None:
    pin_to_one_core()
    work = scratch_dir("bench-models-")
    entries = bench_entries(work)
    x = full_history(3000, seed=5)[0].astype(np.float32)
    for count in (1, 3):
        chosen = entries[:count]
        for start, monitored, goal in CASES:
            ratios = asyncio.run(unit_ratios(chosen, x, start == "readings", monitored))
            per_model = {name: {
                "samples_per_s": round(r.candidate_rate), "bare_samples_per_s": round(r.baseline_rate),
                "ratio": round(r.wall.median, 3), "ratio_min": round(r.wall.low, 3),
                "ratio_max": round(r.wall.high, 3), "pairs": r.pairs,
                "ratio_cpu_time": round(r.cpu.median, 3), "ratio_cpu_time_min": round(r.cpu.low, 3),
                "ratio_cpu_time_max": round(r.cpu.high, 3)} for name, r in ratios.items()}
            emit(bench="pipeline_per_model", models=count, batch=BATCH, start=start,
                 monitored=monitored, per_model=per_model,
                 min_ratio=min(m["ratio"] for m in per_model.values()),
                 min_ratio_cpu_time=min(m["ratio_cpu_time"] for m in per_model.values()),
                 baseline=f"bare onnxruntime session.run on the same model and rows, in pairs of "
                 f"{STRETCH_S} s stretches with the pipeline's, the order swapped every pair",
                 goal=goal,
                 note="intake, fan-out and outbox flush split evenly between the models")


if __name__ == "__main__":
    logging.basicConfig(level=logging.ERROR)  # as python -m bench: no incident or drop lines
    main()
