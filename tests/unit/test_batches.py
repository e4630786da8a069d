"""Columnar prediction batches: lineage hash, outbox encoding, bounded MQTT output queue."""

from __future__ import annotations

import numpy as np

from agent.config import MqttBroker, MqttOutputConfig
from agent.inference.batches import PredictionBatch, decode_predictions, encode_predictions, inputs_hash
from agent.outputs.publish import MqttPublisher


def slow_hash(row: list[float]) -> int:
    """The documented definition, written the slow way."""
    m = (1 << 64) - 1
    words = np.asarray(row, dtype=np.float32).view(np.uint32).tolist()
    h = sum(w * pow(0x100000001B3, len(words) - j, 1 << 64) for j, w in enumerate(words)) & m
    h ^= h >> 30
    h = (h * 0xBF58476D1CE4E5B9) & m
    h ^= h >> 27
    h = (h * 0x94D049BB133111EB) & m
    return h ^ (h >> 31)


def batch(n: int, start: int = 0) -> PredictionBatch:
    x = np.arange(n * 3, dtype=np.float32).reshape(n, 3) + start
    return PredictionBatch("m", "1", "ab" * 32, [str(start + i) for i in range(n)],
                           np.arange(n, dtype=np.float64) + 1e9, 1e9 + 99, np.linspace(0, 1, n),
                           np.arange(n) % 2, ["NOK", "OK"], inputs_hash(x))


def test_inputs_hash_matches_its_definition_and_differs_per_row() -> None:
    x = np.array([[1.5, -2.0, 3.25], [1.5, -2.0, 3.2500002]], dtype=np.float32)
    h = inputs_hash(x)
    assert [int(v) for v in h] == [slow_hash(r) for r in x.tolist()]
    assert h[0] != h[1]


def test_predictions_roundtrip_through_outbox_encoding() -> None:
    b = PredictionBatch.concat([batch(3), batch(2, start=3)])
    rows = decode_predictions(encode_predictions(b))
    assert [r["id"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[1]["out"]["label"] == "OK" and rows[2]["out"]["label"] == "NOK"
    assert abs(rows[3]["out"]["score"] - float(b.score[3])) < 1e-6
    assert rows[0]["ts"] == 1e9
    assert rows[4]["in"] == f"{int(b.hashes[4]):016x}"
    assert b.prediction(4).inputs_hash == rows[4]["in"]


def test_publisher_queue_is_bounded_and_counts_drops() -> None:
    cfg = MqttOutputConfig(broker=MqttBroker(host="127.0.0.1", port=1), queue_size=10)
    pub = MqttPublisher(cfg, "gw")
    pub.offer(batch(6))
    pub.offer(batch(6, start=6))
    assert pub.queued == 10 and pub.dropped == 2
    topic, first, row, _ = pub._queue[0]
    assert topic == "edge/gw/m/predictions"
    assert first.sample_ids[row] == "2"  # the two oldest messages went
