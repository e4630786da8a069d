"""Two models on one line for the multi-model tests: bundles renamed to other model names, a
second real model that reads its own tags, an MQTT-fed line (one JSON message per part, every
model's tags and the part counter last), and the agent config that runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np

from agent.demo.sim.process import COUNTER_TAG
from agent.models.builder import build_bundle
from agent.models.bundle import sign_bundle, write_manifest
from agent.models.training import train_onnx

LINE_TOPIC = "line/part"


def renamed(bundle: Path, name: str, version: str, out: Path, key: Path) -> Path:
    """The same model under another model name and version (validly signed)."""
    shutil.copytree(bundle, out)
    (out / "manifest.sig").unlink(missing_ok=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["name"], manifest["version"] = name, version
    write_manifest(out, manifest)
    sign_bundle(out, key)
    return out


def prefixed_csv(csv: Path, prefix: str, out: Path) -> Path:
    lines = csv.read_text().splitlines()
    header = lines[0].split(",")
    out.write_text("\n".join([",".join([prefix + h for h in header[:-1]] + [header[-1]]),
                              *lines[1:]]) + "\n")
    return out


def own_inputs_model(root: Path, trained: dict[str, Path], name: str, prefix: str) -> Path:
    """A second real model of the line that reads its own tags (PREFIX + the process tags)."""
    train = prefixed_csv(trained["train"], prefix, root / f"{name}-train.csv")
    holdout = prefixed_csv(trained["holdout"], prefix, root / f"{name}-holdout.csv")
    table = np.genfromtxt(train, delimiter=",", skip_header=1, dtype=str)
    model = train_onnx(table[:, :-1].astype(np.float32), table[:, -1], root / f"{name}.onnx",
                       kind="logistic")
    out = root / f"bundle-{name}"
    build_bundle(model, train, "label", name, "1.0.0", out, holdout_csv=holdout,
                 positive_class="NOK", signing_key=trained["key"])
    return out


def holdout_rows(trained: dict[str, Path]) -> tuple[list[str], np.ndarray]:
    lines = trained["holdout"].read_text().splitlines()
    names = lines[0].split(",")[:-1]
    rows = np.array([[float(v) for v in line.split(",")[:-1]] for line in lines[1:]])
    return names, rows


def line_source(port: int, tags: list[str]) -> dict[str, Any]:
    return {"type": "mqtt", "name": "line", "qos": 1,
            "broker": {"host": "127.0.0.1", "port": port, "reconnect": {"initial_s": 0.2, "max_s": 1.0}},
            "topics": [{"topic": LINE_TOPIC, "tags": [{"tag": t, "field": t} for t in
                                                      [*tags, COUNTER_TAG]]}]}


def part_payload(counter: int, values: dict[str, float]) -> bytes:
    return json.dumps({**values, COUNTER_TAG: float(counter)}).encode()


async def publish_parts(port: int, first: int, rows: list[dict[str, float]]) -> int:
    """One message per part, counters first, first+1, ...; returns the next counter."""
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for i, values in enumerate(rows):
            await client.publish(LINE_TOPIC, part_payload(first + i, values), qos=1)
    return first + len(rows)
