"""Each model's pipeline with 1 and 3 models on one gateway, against bare onnxruntime on the
same model and inputs at batch 64 in the same run, on one core. Goal: every model's ratio >= 0.5
(as bench.pipeline's figure for one model: rows -> inference -> outputs -> outbox).

The three models are of the size bench.pipeline measures (a ridge or logistic model infers 64
rows in 15 us, which no Python pipeline matches): moulding-nok, gradient boosting (60 trees) on
every process tag; cycle-time, a gradient boosting regressor (60 trees) on the cycle time's
tags; nok-barrel, a random forest (50 trees) on the barrel temperatures, pressure and cushion.

A model's pipeline is what its unit does with a batch: inference through its lifecycle,
predictions to the sinks and the outbox recorder (and with monitoring on, its drift monitors and
pending-label table). Two starting points, as in bench.pipeline: feature rows (a SampleBatch per
model), and single tag readings through the intake, the fan-out to every model's channel and
each model's feature builder. The time of what the models share (the intake and fan-out, the
outbox flush) is split evenly between them; the rest is each unit's own, timed around it.

    python -m bench pipeline        (also part of make bench)
"""

from __future__ import annotations

import asyncio
import tempfile
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
from bench.common import emit, quick
from bench.models3 import BARREL_MODEL, BARREL_TAGS
from bench.pipeline import BATCH


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


BLOCK = 20  # batches per model in a row, then as many bare runs of that model


async def unit_rates(entries: list[dict[str, Any]], x: np.ndarray, seconds: float,
                     from_readings: bool, monitored: bool) -> dict[str, tuple[float, float, float, float]]:
    """(pipeline, bare onnxruntime) samples per second of each model, all models running in
    one agent; the two measured in alternating blocks, so both see the same machine."""
    state = Path(tempfile.mkdtemp(prefix="bench-models-"))
    agent = agent_of(entries, state, monitored)
    async with AsyncOutbox(state / "outbox.db", 1 << 34) as outbox:
        agent.outbox = outbox
        agent.recorder.outbox = outbox
        await agent._load_initial_model()
        units = agent.units
        spent = {u.name: np.zeros(2) for u in units}  # (wall, CPU) seconds
        bare_spent = {u.name: np.zeros(2) for u in units}  # (wall, CPU) seconds
        share = 1.0 / len(units)
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
        n, counter, start = 0, 0, time.perf_counter()
        last_flush = start
        while time.perf_counter() - start < seconds:
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
            n += BLOCK * BATCH
            for unit in units:  # the baseline in the same stretch of time, on the same rows
                session, names, feed = bare[unit.name]
                t = stamp()
                for _ in range(BLOCK):
                    session.run(names, feed)
                bare_spent[unit.name] += stamp() - t
            if time.perf_counter() - last_flush >= agent.config.outbox.flush_interval_s:
                t = stamp()
                await agent._flush()
                for name in spent:
                    spent[name] += (stamp() - t) * share
                last_flush = time.perf_counter()
        t = stamp()
        await agent._flush()
        for name in spent:
            spent[name] += (stamp() - t) * share
        for unit in units:
            assert unit.predictions == n, (unit.name, unit.predictions, n)
        for unit in units:
            unit.close()
    return {name: (n / s[0], n / bare_spent[name][0], n / s[1], n / bare_spent[name][1])
            for name, s in spent.items()}


def stamp() -> np.ndarray:
    """(wall clock, CPU time of the process): on a shared machine the wall clock also counts
    the time other processes took the core, the CPU time only this process's own work (the
    outbox writer's thread included); both are reported."""
    return np.array((time.perf_counter(), time.process_time()))


def bare_session(unit: ModelUnit, rows: np.ndarray) -> tuple[Any, list[str], dict[str, np.ndarray]]:
    """A plain onnxruntime session of the unit's model file, one thread, as bench.pipeline's."""
    import onnxruntime as ort

    assert unit.model is not None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(unit.model.bundle.model_path), opts,
                                   providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: rows}
    return session, [o.name for o in session.get_outputs()], feed


CASES = (  # (start, monitored, goal)
    ("rows", False, ">= 0.5"),
    ("rows", True, "(no goal; shows what monitoring costs)"),
    ("readings", True, "(no goal; a line gives far fewer)"),
)


def main() -> None:
    seconds = 1.0 if quick() else 3.0
    work = Path(tempfile.mkdtemp(prefix="bench-models-"))
    entries = bench_entries(work)
    x = full_history(3000, seed=5)[0].astype(np.float32)
    for count in (1, 3):
        chosen = entries[:count]
        for start, monitored, goal in CASES:
            rates = asyncio.run(unit_rates(chosen, x, seconds, start == "readings", monitored))
            per_model = {}
            for name, (rate, bare, cpu_rate, cpu_bare) in rates.items():
                per_model[name] = {"samples_per_s": round(rate), "bare_samples_per_s": round(bare),
                                   "ratio": round(rate / bare, 3),
                                   "ratio_cpu_time": round(cpu_rate / cpu_bare, 3)}
            emit(bench="pipeline_per_model", models=count, batch=BATCH, start=start,
                 monitored=monitored, per_model=per_model,
                 min_ratio=min(m["ratio"] for m in per_model.values()),
                 min_ratio_cpu_time=min(m["ratio_cpu_time"] for m in per_model.values()),
                 baseline="bare onnxruntime session.run on the same model and rows, in blocks of "
                 f"{BLOCK} batches alternating with the pipeline's", goal=goal,
                 note="intake, fan-out and outbox flush split evenly between the models")
