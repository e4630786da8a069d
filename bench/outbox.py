"""Outbox append rate vs raw sqlite3 executemany into the same schema, and bytes per reading."""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from agent.demo.sim.tags import plant_readings
from agent.store.codec import encode_readings
from agent.store.outbox import NewRecord, Outbox, Priority
from bench.common import emit, pin_to_one_core, quick

ROWS_PER_TXN = 500
PAYLOAD = 200  # bytes: a small predictions or events record


def outbox_rate(path: Path, synchronous: str, total: int) -> float:
    box = Outbox(path, 1 << 34, synchronous)
    records = [NewRecord("predictions", Priority.PREDICTIONS, bytes(PAYLOAD), 1)] * ROWS_PER_TXN
    start = time.perf_counter()
    for _ in range(total // ROWS_PER_TXN):
        box.append(records)
    rate = total / (time.perf_counter() - start)
    box.close()
    return rate


def raw_rate(path: Path, synchronous: str, total: int) -> float:
    """The floor: plain executemany into the outbox's own table, one transaction per batch."""
    Outbox(path, 1 << 34, synchronous).close()  # same schema, indexes and pragmas
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    payload = bytes(PAYLOAD)
    seq = 0
    start = time.perf_counter()
    for _ in range(total // ROWS_PER_TXN):
        now = time.time()
        rows = [(seq + i + 1, "predictions", 1, now, payload, PAYLOAD + 48, 1) for i in range(ROWS_PER_TXN)]
        seq += ROWS_PER_TXN
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", rows)
        conn.execute("COMMIT")
    rate = total / (time.perf_counter() - start)
    conn.close()
    return rate


def bytes_per_reading(path: Path) -> tuple[float, float]:
    """100 tags at 1 Hz, flushed every 0.5 s as the agent does; payload and whole-file bytes."""
    readings = plant_readings(100, 300)
    box = Outbox(path, 1 << 34)
    for start in range(0, len(readings), 50):
        part = readings[start:start + 50]
        box.append([NewRecord("readings", Priority.READINGS, encode_readings(part), len(part))])
    stored = box.stats().bytes
    box.close()
    return stored / len(readings), path.stat().st_size / len(readings)


def main() -> None:
    pin_to_one_core()
    total = 100_000 if quick() else 400_000
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("NORMAL", "FULL"):
            ours = outbox_rate(Path(tmp) / f"o-{sync}.db", sync, total)
            raw = raw_rate(Path(tmp) / f"r-{sync}.db", sync, total)
            emit(bench="outbox_append", synchronous=sync, rows_per_txn=ROWS_PER_TXN,
                 rows_per_s=round(ours), baseline="raw sqlite3 executemany, same schema",
                 baseline_rows_per_s=round(raw), ratio=round(ours / raw, 3), goal=">= 0.7")
        payload, whole = bytes_per_reading(Path(tmp) / "readings.db")
        week = whole * 100 * 86400 * 7
        emit(bench="bytes_per_reading", tags=100, rate_hz=1, flush_s=0.5,
             bytes_per_reading=round(payload, 2), file_bytes_per_reading=round(whole, 2),
             week_offline_gib=round(week / 2**30, 3), goal="<= 17 (a week in 1 GiB)")


if __name__ == "__main__":
    main()
