"""edge-agent demo: the whole product on one machine, no setup.

Starts an MQTT broker, the simulated moulding line, trains a first model on simulated history,
builds and signs its bundle, runs the agent against the line, and reports what happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import yaml

from agent.app import Agent
from agent.batches import PredictionBatch, SampleBatch
from agent.bundle import generate_keypair
from agent.bundle_build import build_bundle
from agent.config import parse_config
from agent.logsetup import setup_logging
from agent.sim.broker import any_broker, free_port
from agent.sim.line import SimOptions, SimulatedLine, node_id
from agent.sim.process import COUNTER_TAG, PROCESS_TAGS, history
from agent.training import train_onnx, write_csv
from agent.types import Label

log = logging.getLogger(__name__)


def prepare_model(out: Path, rows: int = 4000) -> tuple[Path, Path]:
    """Train on simulated drift-free history; return (bundle dir, public key)."""
    x, names, y = history(rows, seed=1)
    split = int(rows * 0.75)
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_csv(data / "train.csv", x[:split], names, y[:split])
    write_csv(data / "holdout.csv", x[split:], names, y[split:])
    model = train_onnx(x[:split], y[:split], data / "model.onnx")
    keys = out / "keys"
    generate_keypair(keys / "signing.pem", keys / "signing.pub")
    bundle_dir = out / "bundles" / "moulding-nok-1.0.0"
    build_bundle(model, data / "train.csv", "label", "moulding-nok", "1.0.0", bundle_dir,
                 holdout_csv=data / "holdout.csv", positive_class="NOK",
                 signing_key=keys / "signing.pem",
                 lineage={"trainer": "sklearn GradientBoostingClassifier", "reason": "initial"})
    return bundle_dir, keys / "signing.pub"


def agent_config(out: Path, opcua_port: int, ns: int, mqtt_port: int, bundle: Path,
                 public_key: Path) -> dict[str, Any]:
    broker = {"host": "127.0.0.1", "port": mqtt_port}
    return {
        "gateway_id": "demo-line-1",
        "state_dir": str(out / "state"),
        "sources": [{
            "type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/sim",
            "publishing_interval_ms": 50, "sampling_interval_ms": 0, "watchdog_s": 1.0,
            "nodes": [{"tag": t, "node_id": node_id(t, ns)} for t in [*PROCESS_TAGS, COUNTER_TAG]],
        }],
        "features": {"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 5.0},
        "model": {"bundle": str(bundle), "trusted_keys": [str(public_key)]},
        "outputs": {"mqtt": {"broker": broker, "topic": "edge/{gateway_id}/{model}/predictions"}},
        "labels": {"type": "mqtt", "broker": broker, "topic": "plant/line1/qc", "sample_id_field": "serial",
                   "label_field": "result"},
        "outbox": {"flush_interval_s": 0.5},
    }


class Scoreboard:
    """Joins predictions to QC results by serial, for the on-screen accuracy."""

    def __init__(self) -> None:
        self.predicted: dict[str, str] = {}
        self.hits: deque[bool] = deque(maxlen=200)
        self.joined = 0

    def on_predictions(self, samples: SampleBatch, batch: PredictionBatch) -> None:
        for i, sample_id in enumerate(batch.sample_ids):
            self.predicted[sample_id] = str(batch.outputs(i).get("label"))

    def on_label(self, label: Label) -> None:
        guess = self.predicted.pop(label.sample_id, None)
        if guess is not None:
            self.joined += 1
            self.hits.append(guess == str(label.value))

    @property
    def accuracy(self) -> float | None:
        return sum(self.hits) / len(self.hits) if self.hits else None


def run_demo(duration: float, out: Path, speed: float = 300.0) -> int:
    setup_logging("WARNING")
    out.mkdir(parents=True, exist_ok=True)
    return asyncio.run(_demo(duration, out, speed))


async def _demo(duration: float, out: Path, speed: float) -> int:
    t0 = time.monotonic()
    _say(f"[demo] training a first model on simulated history -> {out}/bundles")
    bundle, pub = await asyncio.to_thread(prepare_model, out)
    async with any_broker() as broker:
        _say(f"[demo] MQTT broker ({broker.kind}) on 127.0.0.1:{broker.port}")
        options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=speed,
                             cycle_s=30.0, qc_delay_s=60.0)
        async with SimulatedLine(options) as line:
            _say(f"[demo] simulated moulding machine on opc.tcp://127.0.0.1:{options.opcua_port}"
                 f"/sim, {speed:g}x real time")
            cfg_dict = agent_config(out, options.opcua_port, line.ns, broker.port, bundle, pub)
            (out / "agent.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
            agent = Agent(parse_config(cfg_dict))
            board = Scoreboard()
            agent.prediction_listeners.append(board.on_predictions)
            if agent.labels is not None:
                inner = agent.labels._deliver

                def tee(label: Label) -> None:
                    inner(label)
                    board.on_label(label)

                agent.labels._deliver = tee
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(agent.run(stop))
                machine = tg.create_task(line.run_machine())
                qc = tg.create_task(line.run_qc_station())
                end = time.monotonic() + duration
                while time.monotonic() < end:
                    await asyncio.sleep(min(5.0, max(0.1, end - time.monotonic())))
                    _progress(agent, board, line, end)
                machine.cancel()
                await asyncio.sleep(0.5)
                qc.cancel()
                stop.set()
            summary = _summary(agent, board, line, broker.kind, time.monotonic() - t0)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    _say("\n[demo] summary")
    for key, value in summary.items():
        _say(f"  {key:22} {value}")
    _say(f"[demo] written to {out}/summary.json; agent config in {out}/agent.yaml")
    return 0 if summary["predictions"] > 0 and not summary["errors"] else 1


def _progress(agent: Agent, board: Scoreboard, line: SimulatedLine, end: float) -> None:
    acc = board.accuracy
    stats = agent.outbox_stats
    _say(f"[demo] {max(0, end - time.monotonic()):5.0f}s left | parts {line.parts:5d} | "
         f"predictions {agent.predictions:5d} | labels {agent.labels_received:5d} | "
         f"accuracy(last 200) {'-' if acc is None else f'{acc:.3f}'} | "
         f"outbox {stats.depth if stats else 0} records")


def _summary(agent: Agent, board: Scoreboard, line: SimulatedLine, broker: str,
             wall: float) -> dict[str, Any]:
    stats = agent.outbox_stats
    readings = sum(s.status.readings for s in agent.sources)
    errors = {
        "inference_errors": agent.inference_errors,
        "dropped_readings": agent.dropped_readings,
        "component_restarts": sum(h.restarts for h in agent.health.values()),
    }
    return {
        "broker": broker,
        "wall_seconds": round(wall, 1),
        "parts_made": line.parts,
        "readings": readings,
        "samples": agent.builder.samples if agent.builder else 0,
        "invalid_samples": agent.builder.invalid_total if agent.builder else 0,
        "predictions": agent.predictions,
        "published": agent.publisher.published if agent.publisher else 0,
        "labels_received": agent.labels_received,
        "labels_joined": board.joined,
        "rolling_accuracy": None if board.accuracy is None else round(board.accuracy, 4),
        "outbox_records": stats.depth if stats else 0,
        "outbox_items": stats.items if stats else 0,
        "outbox_bytes": stats.bytes if stats else 0,
        "evicted": stats.evicted_items if stats else 0,
        "model": agent.model.bundle.label if agent.model else None,
        "errors": {k: v for k, v in errors.items() if v},
    }


def _say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
