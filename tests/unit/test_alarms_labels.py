"""Detector conditions (rise, no latching, back to normal) and the delayed label join."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from agent.inference.batches import PredictionBatch
from agent.monitor.alarms import AlarmBook, MonitorEvent
from agent.monitor.labeljoin import LabelJoin


def event(level: str, score: float = 1.0, feature: str | None = "f1") -> MonitorEvent:
    return MonitorEvent(10, 1.7e9, "data_drift", feature, "psi", level, score, 0.5, "m", "1")


def test_condition_rises_once_per_level_and_ends_when_back_to_normal() -> None:
    book = AlarmBook()
    assert book.raise_level(event("warning")) is not None
    assert book.raise_level(event("warning")) is None  # no repeated event for the same state
    assert book.raise_level(event("alarm")) is not None
    assert book.raise_level(event("warning")) is None  # never lowered by a detection
    assert book.worst() == "alarm"
    # a condition does not latch (the incident does): back to normal ends it
    assert book.clear(("data_drift", "psi", "f1"), event("ok")) is not None
    assert book.worst() == "ok" and book.active() == []
    assert book.clear(("data_drift", "psi", "f1"), event("ok")) is None


def test_book_state_roundtrip() -> None:
    book = AlarmBook()
    book.raise_level(event("alarm", feature="f2"))
    other = AlarmBook()
    other.restore(book.state())
    assert other.active() == book.active()


def preds(ids: list[str], t0: float) -> PredictionBatch:
    n = len(ids)
    return PredictionBatch("m", "1", "ab" * 32, ids, t0 + np.arange(n, dtype=float), time.time(),
                           np.full(n, 0.2), np.ones(n, dtype=np.int64), ["NOK", "OK"],
                           np.zeros(n, dtype=np.uint64))


def test_join_by_sample_id_with_coverage_and_latency(tmp_path: Path) -> None:
    join = LabelJoin(tmp_path / "l.db", ttl_s=3600, max_pending=1000)
    join.add(preds(["a", "b", "c", "d"], 100.0), first_index=40)
    got = join.join("b", 106.0)
    assert got is not None and (got.index, got.predicted, got.latency_s) == (41, 1.0, 5.0)
    assert got.score == 0.2  # the score it was predicted with: the label CUSUM weighs by it
    assert join.join("b", 107.0) is None  # joined once only
    assert join.join("zzz", 107.0) is None
    figures = join.figures()
    assert figures["coverage"] == 0.25 and figures["mean_latency_s"] == 5.0
    assert figures["unmatched_labels"] == 2 and figures["pending"] == 3


def test_join_by_time_offset(tmp_path: Path) -> None:
    join = LabelJoin(tmp_path / "l.db", 3600, 1000, match="time_offset", offset_s=60, tolerance_s=0.4)
    join.add(preds(["p1", "p2", "p3"], 1000.0), first_index=0)  # parts at t=1000, 1001, 1002
    got = join.join("", 1061.2)  # a QC verdict a minute after the part
    assert got is not None and got.index == 1
    assert join.join("", 1070.0) is None  # nothing made near t=1010


def test_pending_labels_expire_are_bounded_and_survive_restart(tmp_path: Path) -> None:
    join = LabelJoin(tmp_path / "l.db", ttl_s=10, max_pending=5)
    join.add(preds([f"s{i}" for i in range(8)], 0.0), first_index=0)
    assert join.expire(now=time.time()) == 3  # bounded at 5: the 3 oldest go
    join.close()
    again = LabelJoin(tmp_path / "l.db", ttl_s=10, max_pending=5)
    assert again.pending == 5 and again.counts["predictions"] == 8
    joined = again.join("s7", 1.0)
    assert joined is not None and joined.score == 0.2  # a label after a restart still finds its part
    assert again.expire(now=time.time() + 60) == 4  # the rest outlived their time-to-live
    assert again.figures()["expired"] == 4


def test_a_pending_table_of_an_earlier_version_gains_the_score_column(tmp_path: Path) -> None:
    import sqlite3

    db = sqlite3.connect(tmp_path / "l.db")
    db.execute("CREATE TABLE pending (sample_id TEXT PRIMARY KEY, idx INTEGER NOT NULL, ts REAL NOT "
               "NULL, predicted REAL NOT NULL, created REAL NOT NULL)")
    db.execute("INSERT INTO pending VALUES ('old', 3, 5.0, 1.0, ?)", (time.time(),))
    db.commit()
    db.close()
    join = LabelJoin(tmp_path / "l.db", ttl_s=3600, max_pending=100)
    old = join.join("old", 6.0)
    assert old is not None and old.index == 3 and np.isnan(old.score)  # kept, without a score
    join.add(preds(["new"], 10.0), first_index=4)
    join.flush()
    new = join.join("new", 11.0)
    assert new is not None and new.score == 0.2
