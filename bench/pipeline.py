"""End-to-end agent pipeline vs bare onnxruntime on the same model and inputs, one core.

Three figures, each against bare ``session.run`` at batch 64 measured in the same run:
- pipeline_from_rows: feature rows ready (SampleBatch) -> inference -> outputs -> outbox;
- pipeline_from_readings: the same, starting from individual tag readings through the
  feature builder (9 readings and a part-counter trigger per sample), as OPC UA delivers them;
- mqtt_publish: what the output task then sends to a real mosquitto, messages per second.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from agent.config import ModelConfig, parse_config
from agent.demo.sim.broker import MosquittoBroker, mosquitto_path
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.service.agent import Agent
from agent.types import Reading
from bench.common import emit, pin_to_one_core, quick, trained_bundle

BATCH = 64


def bare_ort(model_path: Path, x: np.ndarray, seconds: float) -> float:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    feed = {session.get_inputs()[0].name: x[:BATCH]}
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            session.run(names, feed)
        n += 100 * BATCH
    return n / (time.perf_counter() - start)


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


async def pipeline_rate(bundle: Path, pub: Path, x: np.ndarray, seconds: float,
                        from_readings: bool, monitored: bool = False) -> float:
    state = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    agent = agent_for(bundle, pub, state)
    from agent.store.outbox import AsyncOutbox

    async with AsyncOutbox(state / "outbox.db", 1 << 34) as outbox:
        agent.outbox = outbox
        await agent._load_initial_model()
        assert agent.model is not None and agent.builder is not None
        if not monitored and agent.watch is not None:
            agent.watch.close()  # the issue-2 pipeline: features, inference, outputs, outbox
            agent.watch = None
        rows = x[:BATCH]
        now = time.time()
        n, counter, start = 0, 0, time.perf_counter()
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
        last_flush = start
        while time.perf_counter() - start < seconds:
            for _ in range(20):
                if from_readings:
                    agent.readings.extend(readings_per_batch[counter % 2])
                    agent._process_once()
                else:
                    samples = SampleBatch(id_lists[counter % 2], np.full(BATCH, now), rows)
                    predictions, out = agent.model.predict(samples)
                    agent._deliver(predictions)
                    if agent.watch is not None:  # drift monitors and the pending-label table
                        agent._emit(agent.watch.on_batch(samples, predictions, out))
                counter += 1
                n += BATCH
            if time.perf_counter() - last_flush >= flush_every:  # the flusher's schedule
                await agent._flush()
                last_flush = time.perf_counter()
        await agent._flush()
        elapsed = time.perf_counter() - start
        assert agent.predictions == n, (agent.predictions, n)
    return n / elapsed


async def mqtt_publish_rate(bundle: Path, pub: Path, x: np.ndarray, messages: int) -> float | None:
    if not mosquitto_path():
        return None
    broker = MosquittoBroker()
    broker.start()
    try:
        state = Path(tempfile.mkdtemp(prefix="bench-agent-"))
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


def main() -> None:
    pin_to_one_core()
    seconds = 1.0 if quick() else 3.0
    for kind in ("gbt", "rf"):
        bundle, pub, x = trained_bundle(kind)
        model_file = bundle / "model.onnx"
        bare = bare_ort(model_file, x, seconds)
        rows = asyncio.run(pipeline_rate(bundle, pub, x, seconds, from_readings=False))
        bare2 = bare_ort(model_file, x, seconds)  # again after: the machine's state drifts
        baseline = (bare + bare2) / 2
        emit(bench="pipeline_from_rows", model=kind, batch=BATCH, samples_per_s=round(rows),
             baseline="bare onnxruntime session.run", baseline_samples_per_s=round(baseline),
             ratio=round(rows / baseline, 3), goal=">= 0.5")
        watched = asyncio.run(pipeline_rate(bundle, pub, x, seconds, from_readings=False,
                                            monitored=True))
        emit(bench="pipeline_from_rows_monitored", model=kind, batch=BATCH,
             samples_per_s=round(watched), baseline="bare onnxruntime session.run",
             baseline_samples_per_s=round(baseline), ratio=round(watched / baseline, 3),
             note="plus every drift detector and the pending-label table (SQLite)")
        readings = asyncio.run(pipeline_rate(bundle, pub, x, seconds, from_readings=True,
                                             monitored=True))
        emit(bench="pipeline_from_readings", model=kind, batch=BATCH, samples_per_s=round(readings),
             readings_per_s=round(readings * 9), baseline="bare onnxruntime session.run",
             baseline_samples_per_s=round(baseline), ratio=round(readings / baseline, 3),
             note="monitored, from single tag readings through the feature builder")
    rate = asyncio.run(mqtt_publish_rate(bundle, pub, x, 5_000 if quick() else 20_000))
    if rate is not None:
        emit(bench="mqtt_publish", qos=1, messages_per_s=round(rate),
             note="per-prediction JSON messages through aiomqtt to a local mosquitto")


if __name__ == "__main__":
    main()
