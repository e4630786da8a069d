"""Each model's pipeline with 1 and 3 models on one gateway, against bare onnxruntime on the
same model and inputs at batch 64 in the same run, on one core. Goal: every model's ratio >= 0.5.

A model's pipeline is what its unit does with a batch: inference through its lifecycle,
predictions to the sinks and the outbox recorder, its drift monitors and pending-label table.
Two starting points, as in bench.pipeline: feature rows (a SampleBatch per model), and single
tag readings through the intake, the fan-out to every model's channel and each model's feature
builder. The time of what the models share (the intake and fan-out, the outbox flush) is split
evenly between them; the rest is each unit's own, timed around it.

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
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS, full_history
from agent.inference.batches import SampleBatch
from agent.service.agent import Agent
from agent.service.unit import ModelUnit
from agent.store.outbox import AsyncOutbox
from agent.types import Reading
from bench.common import emit, quick
from bench.models3 import model_entries
from bench.pipeline import BATCH, bare_ort


def agent_of(entries: list[dict[str, Any]], state: Path) -> Agent:
    cfg = parse_config({
        "gateway_id": "bench", "state_dir": str(state),
        "sources": [{"type": "mqtt", "name": "none", "broker": {"host": "127.0.0.1"},
                     "topics": [{"topic": "x", "tags": [{"tag": t} for t in [*PROCESS_TAGS, COUNTER_TAG]]}]}],
        "features": {"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 1e9},
        "models": [{**{k: v for k, v in e.items() if k != "labels"}, "batch_max": BATCH} for e in entries],
        "outputs": {"mqtt": {"broker": {"host": "127.0.0.1", "port": 1}, "queue_size": 10_000}},
        "health": {"enabled": False},
    })
    return Agent(cfg)


def rows_of(unit: ModelUnit, x: np.ndarray) -> np.ndarray:
    assert unit.model is not None
    return np.ascontiguousarray(x[:BATCH, [PROCESS_TAGS.index(t) for t in unit.model.input_tags]])


async def unit_rates(entries: list[dict[str, Any]], x: np.ndarray, seconds: float,
                     from_readings: bool) -> dict[str, float]:
    """Samples per second of each model's pipeline, all models running in one agent."""
    state = Path(tempfile.mkdtemp(prefix="bench-models-"))
    agent = agent_of(entries, state)
    async with AsyncOutbox(state / "outbox.db", 1 << 34) as outbox:
        agent.outbox = outbox
        agent.recorder.outbox = outbox
        await agent._load_initial_model()
        units = agent.units
        spent = {u.name: 0.0 for u in units}
        share = 1.0 / len(units)
        rows = {u.name: rows_of(u, x) for u in units}
        now = time.time()
        ids = [[str(k * BATCH + i) for i in range(BATCH)] for k in range(2)]
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
        n, counter, start = 0, 0, time.perf_counter()
        last_flush = start
        while time.perf_counter() - start < seconds:
            for _ in range(20):
                if from_readings:
                    t = time.perf_counter()
                    for r in batches[counter % 2]:
                        agent.offer(r)
                    shared = time.perf_counter() - t
                    for unit in units:
                        t = time.perf_counter()
                        unit.process_now()
                        spent[unit.name] += time.perf_counter() - t + shared * share
                else:
                    for unit in units:
                        t = time.perf_counter()
                        samples = SampleBatch(ids[counter % 2], np.full(BATCH, now), rows[unit.name])
                        unit._settle(samples, unit._compute(samples))
                        spent[unit.name] += time.perf_counter() - t
                counter += 1
                n += BATCH
            if time.perf_counter() - last_flush >= agent.config.outbox.flush_interval_s:
                t = time.perf_counter()
                await agent._flush()
                for name in spent:
                    spent[name] += (time.perf_counter() - t) * share
                last_flush = time.perf_counter()
        t = time.perf_counter()
        await agent._flush()
        for name in spent:
            spent[name] += (time.perf_counter() - t) * share
        for unit in units:
            assert unit.predictions == n, (unit.name, unit.predictions, n)
        for unit in units:
            unit.close()
    return {name: n / s for name, s in spent.items()}


def bare_rates(entries: list[dict[str, Any]], x: np.ndarray, seconds: float) -> dict[str, float]:
    import json

    out = {}
    for e in entries:
        bundle = Path(e["bundle"])
        tags = [i["tag"] for i in json.loads((bundle / "manifest.json").read_text())["inputs"]]
        xm = np.ascontiguousarray(x[:, [PROCESS_TAGS.index(t) for t in tags]])
        out[e["name"]] = bare_ort(bundle / "model.onnx", xm, seconds)
    return out


def main() -> None:
    seconds = 1.0 if quick() else 3.0
    work = Path(tempfile.mkdtemp(prefix="bench-models-"))
    entries = model_entries(work, 3, mqtt_port=1)
    x = full_history(3000, seed=5)[0].astype(np.float32)
    for count in (1, 3):
        chosen = entries[:count]
        for from_readings in (False, True):
            before = bare_rates(chosen, x, seconds)
            rates = asyncio.run(unit_rates(chosen, x, seconds, from_readings))
            after = bare_rates(chosen, x, seconds)  # again after: the machine's state drifts
            per_model = {}
            for name, rate in rates.items():
                bare = (before[name] + after[name]) / 2
                per_model[name] = {"samples_per_s": round(rate), "bare_samples_per_s": round(bare),
                                   "ratio": round(rate / bare, 3)}
            emit(bench="pipeline_per_model", models=count, batch=BATCH,
                 start="readings" if from_readings else "rows", per_model=per_model,
                 min_ratio=min(m["ratio"] for m in per_model.values()),
                 baseline="bare onnxruntime session.run on the same model", goal=">= 0.5",
                 note="monitored; intake, fan-out and outbox flush split evenly between the models")
