"""End-to-end agent pipeline vs bare onnxruntime on the same model and inputs, one core.

Figures, each against bare ``session.run`` at batch 64 measured in the same run:
- pipeline_from_rows: feature rows ready (SampleBatch) -> inference -> outputs -> outbox;
- pipeline_from_rows_monitored: the same plus every drift detector and the pending-label table;
- pipeline_from_readings: the same, starting from individual tag readings through the
  feature builder (9 readings and a part-counter trigger per sample), as OPC UA delivers them;
- mqtt_publish: what the output task then sends to a real mosquitto, messages per second.

The pipeline and its baseline are timed in alternating pairs of short stretches (bench/pairs.py):
`ratio` is the median of the pairs' ratios, `ratio_min` / `ratio_max` their spread,
`ratio_cpu_time` the same by the process's CPU time. With BENCH_SINGLE_STRETCH=1 the first
figure also gives `ratio_single_stretch`, by the method before (bare, pipeline, bare again, one
long stretch each), which a neighbour's load moved from 0.40 to 0.75 between runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import ModelConfig, OutboxConfig, parse_config
from agent.demo.sim.broker import MosquittoBroker, mosquitto_path
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.service.agent import Agent
from agent.types import Reading
from bench.common import (
    emit,
    one_thread_session,
    pin_to_one_core,
    quick,
    release,
    scratch_dir,
    trained_bundle,
)
from bench.pairs import PairedRatio, paired_ratio

BATCH = 64
BLOCK = 20  # batches between looks at the clock
STRETCH_S = OutboxConfig().flush_interval_s  # one stretch of each side: one outbox flush period
PAIRS = 3 if quick() else 9  # a median of 9 pairs ignores up to 4 that a neighbour's burst hit


def bare_ort(model_path: Path, x: np.ndarray) -> Callable[[float], Awaitable[int]]:
    """A stretch of bare ``session.run`` at batch 64 for a given time; returns the samples."""
    session = one_thread_session(model_path)
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: x[:BATCH]}

    async def run(seconds: float) -> int:
        n, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            for _ in range(BLOCK):
                session.run(names, feed)
            n += BLOCK * BATCH
        return n
    return run


def agent_for(bundle: Path, pub: Path, state: Path) -> Agent:
    cfg = parse_config({
        "gateway_id": "bench", "state_dir": str(state),
        "sources": [{"type": "mqtt", "name": "none", "broker": {"host": "127.0.0.1"},
                     "topics": [{"topic": "x", "tags": [{"tag": t} for t in [*PROCESS_TAGS, COUNTER_TAG]]}]}],
        "features": {"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 1e9},
        "model": {"bundle": str(bundle), "trusted_keys": [str(pub)], "batch_max": BATCH},
        "outputs": {"mqtt": {"broker": {"host": "127.0.0.1", "port": 1}, "queue_size": 10_000}},
        "health": {"enabled": False},
    })
    return Agent(cfg)


@contextlib.asynccontextmanager
async def pipeline(bundle: Path, pub: Path, x: np.ndarray, from_readings: bool,
                   monitored: bool) -> AsyncIterator[Callable[[float], Awaitable[int]]]:
    """One agent with its outbox; yields a stretch of its pipeline for a given time (batches,
    the outbox flushed on the flusher's schedule and at the end), which returns the samples."""
    state = scratch_dir("bench-agent-")
    agent = agent_for(bundle, pub, state)
    from agent.store.outbox import AsyncOutbox

    async with AsyncOutbox(state / "outbox.db", 1 << 34) as outbox:
        agent.outbox = outbox
        await agent._load_initial_model()
        assert agent.model is not None and agent.builder is not None
        model = agent.model
        if not monitored and agent.watch is not None:
            agent.watch.close()  # the issue-2 pipeline: features, inference, outputs, outbox
            agent.watch = None
        rows = x[:BATCH]
        now = time.time()
        readings_per_batch: list[list[Reading]] = []
        id_lists = [[str(k * BATCH + i) for i in range(BATCH)] for k in range(2)]
        if from_readings:
            # pre-built reading objects (sources create them, not the pipeline); two rounds with
            # counters 1..64 and 65..128, so that every counter reading is a new part
            for b in range(2):
                batch = []
                for i, row in enumerate(rows.tolist()):
                    batch += [Reading("plc", t, v, now, now) for t, v in zip(PROCESS_TAGS, row, strict=True)]
                    batch.append(Reading("plc", COUNTER_TAG, float(b * BATCH + i + 1), now, now))
                readings_per_batch.append(batch)
            agent.builder.update(Reading("plc", COUNTER_TAG, 0.0, now, now))
        flush_every = agent.config.outbox.flush_interval_s
        batches = 0

        async def run(seconds: float) -> int:
            nonlocal batches
            first = batches
            start = last_flush = time.perf_counter()
            flushed = True
            while time.perf_counter() - start < seconds:
                for _ in range(BLOCK):
                    if from_readings:
                        agent.readings.extend(readings_per_batch[batches % 2])
                        agent._process_once()
                    else:
                        samples = SampleBatch(id_lists[batches % 2], np.full(BATCH, now), rows)
                        predictions, out = model.predict(samples)
                        agent._deliver(predictions)
                        if agent.watch is not None:  # drift monitors and the pending-label table
                            agent._emit(agent.watch.on_batch(samples, predictions, out))
                    batches += 1
                flushed = time.perf_counter() - last_flush >= flush_every  # the flusher's schedule
                if flushed:
                    await agent._flush()
                    last_flush = time.perf_counter()
            if not flushed:
                await agent._flush()
            return (batches - first) * BATCH

        yield run
        assert agent.predictions == batches * BATCH, (agent.predictions, batches * BATCH)
    release(state)


async def mqtt_publish_rate(bundle: Path, pub: Path, x: np.ndarray, messages: int) -> float | None:
    if not mosquitto_path():
        return None
    broker = MosquittoBroker()
    broker.start()
    try:
        state = scratch_dir("bench-agent-")
        cfg = agent_for(bundle, pub, state).config.model_copy(deep=True)
        out_cfg = cfg.outputs.mqtt
        assert out_cfg is not None
        from agent.outputs.publish import MqttPublisher

        publisher = MqttPublisher(out_cfg.model_copy(update={
            "broker": out_cfg.broker.model_copy(update={"port": broker.port}), "qos": 1,
            "queue_size": messages}), "bench")
        model = load_model(ModelConfig(bundle=bundle, trusted_keys=[pub]), bundle, state / "st")
        for k in range(messages // BATCH):
            ids = [str(k * BATCH + i) for i in range(BATCH)]
            predictions, _ = model.predict(SampleBatch(ids, np.full(BATCH, time.time()), x[:BATCH]))
            publisher.offer(predictions)
        total = publisher.queued
        task = asyncio.create_task(publisher.run())
        start = time.perf_counter()
        while publisher.published < total:  # noqa: ASYNC110 - a counter, no event to wait on
            await asyncio.sleep(0.01)
        rate = total / (time.perf_counter() - start)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return rate
    finally:
        broker.stop()


# (figure, starts from tag readings, monitored, what the figure line adds)
CASES: tuple[tuple[str, bool, bool, dict[str, Any]], ...] = (
    ("pipeline_from_rows", False, False, {"goal": ">= 0.5"}),
    ("pipeline_from_rows_monitored", False, True,
     {"note": "plus every drift detector and the pending-label table (SQLite)"}),
    ("pipeline_from_readings", True, True,
     {"note": "monitored, from single tag readings through the feature builder"}),
)


async def measure(bare: Callable[[float], Awaitable[int]], bundle: Path, pub: Path, x: np.ndarray,
                  from_readings: bool, monitored: bool,
                  single_s: float | None) -> tuple[PairedRatio, float | None]:
    """The paired ratio of one case; with `single_s`, also the ratio of the method before
    (bare, then the pipeline, then bare again, each one long stretch) on the same agent."""
    async with pipeline(bundle, pub, x, from_readings, monitored) as run:
        paired = await paired_ratio(lambda: bare(STRETCH_S), lambda: run(STRETCH_S), PAIRS)
        if single_s is None:
            return paired, None
        t = time.perf_counter()
        bare_n = await bare(single_s)
        bare_s = time.perf_counter() - t
        t = time.perf_counter()
        pipe_n = await run(single_s)
        pipe_s = time.perf_counter() - t
        t = time.perf_counter()
        bare2_n = await bare(single_s)
        baseline = (bare_n / bare_s + bare2_n / (time.perf_counter() - t)) / 2
        return paired, pipe_n / pipe_s / baseline


def main() -> None:
    pin_to_one_core()
    single_s = (1.0 if quick() else 3.0) if os.environ.get("BENCH_SINGLE_STRETCH") else None
    for kind in ("gbt", "rf"):
        bundle, pub, x = trained_bundle(kind)
        bare = bare_ort(bundle / "model.onnx", x)
        for figure, from_readings, monitored, extra in CASES:
            paired, single = asyncio.run(measure(bare, bundle, pub, x, from_readings, monitored,
                                                 single_s if figure == "pipeline_from_rows" else None))
            if from_readings:
                extra = {"readings_per_s": round(paired.candidate_rate * 9), **extra}
            if single is not None:
                extra = {**extra, "ratio_single_stretch": round(single, 3)}
            emit(bench=figure, model=kind, batch=BATCH, samples_per_s=round(paired.candidate_rate),
                 baseline=f"bare onnxruntime session.run, in pairs of {STRETCH_S} s stretches "
                 "with the pipeline's, the order swapped every pair",
                 baseline_samples_per_s=round(paired.baseline_rate),
                 ratio=round(paired.wall.median, 3), ratio_min=round(paired.wall.low, 3),
                 ratio_max=round(paired.wall.high, 3), pairs=paired.pairs,
                 ratio_cpu_time=round(paired.cpu.median, 3),
                 ratio_cpu_time_min=round(paired.cpu.low, 3),
                 ratio_cpu_time_max=round(paired.cpu.high, 3), **extra)
    rate = asyncio.run(mqtt_publish_rate(bundle, pub, x, 5_000 if quick() else 20_000))
    if rate is not None:
        emit(bench="mqtt_publish", qos=1, messages_per_s=round(rate),
             note="per-prediction JSON messages through aiomqtt to a local mosquitto")


if __name__ == "__main__":
    main()
