"""Outbox: append / peek / ack, durable seqs, disk budget eviction by priority, compact readings."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from agent.demo.sim.tags import plant_readings
from agent.errors import OutboxError
from agent.store.codec import decode_json, decode_readings, encode_json, encode_readings
from agent.store.outbox import AsyncOutbox, NewRecord, Outbox, Priority


def rec(kind: str = "predictions", prio: int = Priority.PREDICTIONS, size: int = 100) -> NewRecord:
    return NewRecord(kind, prio, b"x" * size)


def test_append_peek_ack(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", 1 << 30)
    last = box.append([rec(), rec(), rec()])
    assert last == 3
    batch = box.peek(limit=2)
    assert [r.seq for r in batch] == [1, 2]
    assert box.ack([r.seq for r in batch]) == 2
    assert [r.seq for r in box.peek()] == [3]
    assert box.ack([1, 2]) == 0  # acking twice is harmless
    assert box.stats().depth == 1


def test_sequence_numbers_never_repeat_after_reopen(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", 1 << 30)
    box.append([rec(), rec()])
    box.ack([1, 2])
    box.close()
    box = Outbox(tmp_path / "o.db", 1 << 30)
    assert box.append([rec()]) == 3  # the hub de-duplicates by seq: reuse would lose data


def test_budget_evicts_oldest_lowest_priority_first(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", disk_budget_bytes=1 << 16)
    box.append([NewRecord("readings", Priority.READINGS, b"r" * 1000, items=50) for _ in range(40)])
    box.append([rec("predictions", Priority.PREDICTIONS, 1000) for _ in range(20)])
    box.append([rec("events", Priority.EVENTS, 1000) for _ in range(10)])
    stats = box.stats()
    assert stats.bytes <= stats.budget
    kinds = [r.kind for r in box.peek(limit=1000)]
    assert kinds.count("events") == 10 and kinds.count("predictions") == 20  # all kept
    evicted = 40 - kinds.count("readings")
    assert evicted > 0
    assert stats.evicted_by_kind == {"readings": evicted * 50}
    remaining = [r.seq for r in box.peek(limit=1000) if r.kind == "readings"]
    assert remaining == list(range(evicted + 1, 41))  # the oldest went first


def test_budget_then_evicts_predictions_when_no_readings_left(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", disk_budget_bytes=1 << 16)
    box.append([rec("events", Priority.EVENTS, 1000) for _ in range(10)])
    box.append([rec("predictions", Priority.PREDICTIONS, 1000) for _ in range(80)])
    kinds = [r.kind for r in box.peek(limit=1000)]
    assert kinds.count("events") == 10
    assert box.stats().evicted_by_kind["predictions"] == 80 - kinds.count("predictions")


def test_database_is_valid_after_heavy_use(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db", disk_budget_bytes=1 << 17)
    for _ in range(50):
        box.append([rec("readings", Priority.READINGS, 500) for _ in range(20)])
        box.ack([r.seq for r in box.peek(limit=7)])
    box.close()
    conn = sqlite3.connect(tmp_path / "o.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_unwritable_path_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutboxError):
        Outbox(blocker / "o.db", 1 << 20)


async def test_async_outbox_roundtrip(tmp_path: Path) -> None:
    async with AsyncOutbox(tmp_path / "o.db", 1 << 30) as box:
        await box.append([NewRecord("labels", Priority.LABELS, encode_json([{"id": "1"}]))])
        got = await box.peek()
        assert decode_json(got[0].payload) == [{"id": "1"}]
        await box.ack([got[0].seq])
        assert (await box.stats()).depth == 0


def test_readings_roundtrip_exactly() -> None:
    readings = plant_readings(10, 30)
    back = decode_readings(encode_readings(readings))
    assert [(b.tag, b.value, b.quality) for b in back] == [(r.tag, r.value, r.quality) for r in readings]
    assert max(abs(b.source_ts - r.source_ts) for b, r in zip(back, readings, strict=True)) < 0.0006


def test_bytes_per_reading_meets_goal(tmp_path: Path) -> None:
    """<= 17 bytes per stored tag reading, database overhead included, as the outbox writes them
    (one record per half-second flush)."""
    readings = plant_readings(100, 120)
    box = Outbox(tmp_path / "o.db", 1 << 30)
    for start in range(0, len(readings), 50):  # 100 tags at 1 Hz flushed every 0.5 s
        part = readings[start:start + 50]
        box.append([NewRecord("readings", Priority.READINGS, encode_readings(part), len(part))])
    assert box.stats().bytes / len(readings) <= 17
