"""Hostile QC labels over MQTT: sample ids that are huge numbers, NaN, booleans, empty or full of
control characters; label values that are NaN, null or "inf"; a flood for sample ids the agent
never predicted; labels that arrive before their prediction; a value that is none of the model's
classes. Each is a counted refusal (or a counted unmatched label), never a crash of the
listener, never a poisoned comparison, never a training sample with a class the model lacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from pathlib import Path
from typing import Any

import aiomqtt
import numpy as np
import pytest

from agent.config import MqttLabelsConfig, TrainingDataConfig
from agent.hublink.training_data import TrainingSampler
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.ingest.labels import LabelListener
from agent.models.comparison import Comparison, truth_value
from agent.monitor.labeljoin import LabelJoin
from agent.types import Label
from tests.helpers.running import wait_for


def listener(port: int = 1) -> tuple[LabelListener, list[Label]]:
    got: list[Label] = []
    cfg = MqttLabelsConfig(type="mqtt", broker={"host": "127.0.0.1", "port": port}, topic="qc/#")
    return LabelListener(cfg, "gw", got.append), got


HOSTILE = {
    "serial-400-digits": b'{"serial": 1' + b"0" * 400 + b', "result": "OK"}',
    "serial-1e300": b'{"serial": 1e300, "result": "OK"}',
    "serial-nan": b'{"serial": NaN, "result": "OK"}',
    "serial-inf": b'{"serial": -Infinity, "result": "OK"}',
    "serial-true": b'{"serial": true, "result": "OK"}',
    "serial-null": b'{"serial": null, "result": "OK"}',
    "serial-empty": b'{"serial": "", "result": "OK"}',
    "serial-control": b'{"serial": "P-1\\n2024 ERROR forged", "result": "OK"}',
    "serial-nul": b'{"serial": "P-1\\u0000", "result": "OK"}',
    "serial-257": b'{"serial": "' + b"7" * 257 + b'", "result": "OK"}',
    "label-nan": b'{"serial": "P-1", "result": NaN}',
    "label-inf": b'{"serial": "P-1", "result": Infinity}',
    "label-null": b'{"serial": "P-1", "result": null}',
    "label-nan-text": b'{"serial": "P-1", "result": "nan"}',
    "label-inf-text": b'{"serial": "P-1", "result": " -Infinity "}',
    "label-empty": b'{"serial": "P-1", "result": ""}',
    "label-control": b'{"serial": "P-1", "result": "OK\\r\\nNOK"}',
}
GOOD = {
    b'{"serial": "P-1", "result": "OK"}': ("P-1", "OK"),
    b'{"serial": 12345, "result": "NOK"}': ("12345", "NOK"),
    b'{"serial": 12345.0, "result": 1}': ("12345", 1),
    b'{"serial": "Presse-S\\u00fcd/7", "result": 0.25}': ("Presse-S\u00fcd/7", 0.25),
}


@pytest.mark.parametrize("payload", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_hostile_label_is_a_counted_refusal(payload: bytes) -> None:
    labels, got = listener()
    labels.on_message("qc/line1", payload)
    assert got == [] and labels.status.malformed == 1


def test_good_labels_around_them_still_arrive() -> None:
    labels, got = listener()
    for payload in [*HOSTILE.values(), *GOOD]:
        labels.on_message("qc/line1", payload)
    assert [(g.sample_id, g.value) for g in got] == list(GOOD.values())
    assert labels.status.malformed == len(HOSTILE)


async def test_a_flood_over_a_real_broker_does_not_stop_the_listener(broker: Any) -> None:
    labels, got = listener(broker.port)
    task = asyncio.create_task(labels.run())
    try:
        await wait_for(lambda: labels.status.connected, 10, "listener subscribed")
        async with aiomqtt.Client("127.0.0.1", broker.port) as qc:
            for payload in HOSTILE.values():  # the crash cases first: the rest must still arrive
                await qc.publish("qc/line1", payload, qos=1)
            for i in range(2000):  # labels for sample ids the agent never predicted
                await qc.publish("qc/line1", json.dumps({"serial": f"ghost-{i}", "result": "OK"}),
                                 qos=1)
        await wait_for(lambda: len(got) == 2000, 20, "the flood")
        assert not task.done() and labels.status.connected
        assert labels.status.malformed == len(HOSTILE)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


# -- where labels go ------------------------------------------------------------------------------

def batches(ids: list[str], classes: list[str]) -> tuple[SampleBatch, PredictionBatch]:
    n = len(ids)
    samples = SampleBatch(ids, np.full(n, 1.7e9), np.zeros((n, 2), dtype=np.float32))
    preds = PredictionBatch("m", "1.0.0", "ab" * 32, ids, np.full(n, 1.7e9), 1.7e9,
                            np.full(n, 0.2), np.zeros(n, dtype=np.int64) if classes else None,
                            classes, np.zeros(n, dtype=np.uint64))
    return samples, preds


@pytest.mark.parametrize("value", ["SCRAP", "ok", True, None, 7, 1.5])
def test_a_label_that_is_none_of_the_classes_never_becomes_a_training_sample(value: Any) -> None:
    sampler = TrainingSampler(TrainingDataConfig())
    samples, preds = batches(["P-1", "P-2"], ["OK", "NOK"])
    sampler.remember(samples, preds, ["a", "b"])
    assert sampler.labelled("P-1", value, drift_active=False) is False
    assert sampler.labelled("P-2", "NOK", drift_active=False) is True
    assert [s["label"] for s in sampler.take()] == ["NOK"]
    assert sampler.unknown_labels == 1


def test_a_class_label_sent_as_a_number_is_stored_as_the_class() -> None:
    sampler = TrainingSampler(TrainingDataConfig())
    samples, preds = batches(["P-1"], ["0", "1"])
    sampler.remember(samples, preds, ["a", "b"])
    assert sampler.labelled("P-1", 1.0, drift_active=False)
    kept = sampler.take()[0]
    assert kept["label"] == "1" and kept["hard"] is True  # "1", as the model spells it; not "1.0"


@pytest.mark.parametrize("value", [math.nan, math.inf, "nan", "-inf", None, "x"])
def test_a_non_finite_label_never_reaches_a_regression_comparison(value: Any) -> None:
    assert truth_value([], value) is None
    cmp = Comparison([])
    cmp.record(["P-1"], np.array([1.0]), np.array([2.0]), 0.001, 0.001)
    assert cmp.on_label("P-1", value) is False
    assert cmp.labelled == 0 and math.isfinite(cmp.candidate_errors)


def test_labels_before_their_prediction_and_for_unknown_ids_are_counted_and_keep_nothing(
        tmp_path: Path) -> None:
    join = LabelJoin(tmp_path / "labels.db", ttl_s=3600, max_pending=1000)
    for i in range(5000):
        assert join.join(f"ghost-{i}", 1.7e9) is None
    assert join.join("P-1", 1.7e9) is None  # its prediction comes later
    _, preds = batches(["P-1"], ["OK", "NOK"])
    join.add(preds, 0)
    join.flush()
    figures = join.figures()
    assert figures["unmatched_labels"] == 5001  # counted, and no label kept waiting
    assert figures["pending"] == 1  # only the prediction, waiting for a label of its own
    join.close()
