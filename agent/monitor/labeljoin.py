"""Delayed ground truth: predictions wait in a bounded SQLite table until their label arrives
(matched by sample id, or by time offset), or their time-to-live runs out. Survives restarts.

Every prediction is stored with the bundle (sha256 of its manifest) that made it: the table
outlives a version switch, and a label must be judged against the prediction of the version
that made it, by that version's monitor. A join for a prediction of another bundle (or of a
table written before bundles were recorded) is refused and counted, never handed to this
version's monitor as if it had made it."""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.inference.batches import PredictionBatch


@dataclass(frozen=True)
class Joined:
    index: int  # the monitor's sample index of the labelled prediction
    sample_id: str
    predicted: float  # class index, or the regression value
    latency_s: float
    score: float = float("nan")  # the monitored score (a classifier's positive-class probability)


class LabelJoin:
    def __init__(self, path: Path, ttl_s: float, max_pending: int, match: str = "sample_id",
                 offset_s: float = 0.0, tolerance_s: float = 1.0, bundle: str | None = None) -> None:
        """``bundle``: the sha256 of the bundle whose monitor this join feeds; only predictions
        of that bundle are joined (None: any, for a table that serves no monitor)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS pending (sample_id TEXT PRIMARY KEY, "
                         "idx INTEGER NOT NULL, ts REAL NOT NULL, predicted REAL NOT NULL, "
                         "created REAL NOT NULL)")
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(pending)")}
        if "score" not in columns:  # a table of an earlier version: predictions kept no score
            self._db.execute("ALTER TABLE pending ADD COLUMN score REAL")
        if "bundle" not in columns:  # nor the bundle that made them (NULL: unknown)
            self._db.execute("ALTER TABLE pending ADD COLUMN bundle TEXT")
        self._db.execute("CREATE INDEX IF NOT EXISTS pending_ts ON pending(ts)")
        self._db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value REAL)")
        self.ttl_s, self.max_pending = ttl_s, max_pending
        self.match, self.offset_s, self.tolerance_s = match, offset_s, tolerance_s
        self.bundle = bundle
        self.counts = {k: 0.0 for k in ("predictions", "labelled", "expired", "unmatched",
                                        "latency_sum", "evicted", "other_version")}
        for key, value in self._db.execute("SELECT key, value FROM meta"):
            self.counts[key] = float(value)
        # new predictions wait here until the next flush: one transaction per flush period,
        # not one per inference batch (the hot path stays a dict insert)
        self._fresh: dict[str, tuple[str, int, float, float, float, float, str]] = {}

    def close(self) -> None:
        self.flush()
        self._save_counts()
        self._db.close()

    def add(self, preds: PredictionBatch, first_index: int) -> None:
        values = preds.label_idx if preds.label_idx is not None else preds.score
        now = time.time()
        fresh = self._fresh
        bundle = preds.bundle_sha256
        for i, (sid, ts, v, score) in enumerate(zip(preds.sample_ids, preds.sample_ts.tolist(),
                                                    np.asarray(values).tolist(),
                                                    np.asarray(preds.score).tolist(), strict=True)):
            fresh[sid] = (sid, first_index + i, ts, float(v), now, float(score), bundle)
        self.counts["predictions"] += len(preds)

    def flush(self) -> None:
        if not self._fresh:
            return
        rows, self._fresh = list(self._fresh.values()), {}
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR REPLACE INTO pending (sample_id, idx, ts, predicted, created, "
                             "score, bundle) VALUES (?,?,?,?,?,?,?)", rows)
        self._db.execute("COMMIT")

    def join(self, sample_id: str, label_ts: float) -> Joined | None:
        if self.match != "sample_id":
            self.flush()  # time matching looks across all pending rows
        elif sample_id in self._fresh:
            _, idx, ts, predicted, _, score, bundle = self._fresh.pop(sample_id)
            if not self._mine(bundle):
                return None
            return self._joined(idx, sample_id, predicted, label_ts - ts, score)
        if self.match == "sample_id":
            row = self._db.execute("SELECT sample_id, idx, ts, predicted, score, bundle FROM pending "
                                   "WHERE sample_id=?", (sample_id,)).fetchone()
        else:  # the label describes the part made offset_s before it arrived
            target = label_ts - self.offset_s
            row = self._db.execute(
                "SELECT sample_id, idx, ts, predicted, score, bundle FROM pending WHERE ts BETWEEN ? "
                "AND ? ORDER BY abs(ts - ?) LIMIT 1",
                (target - self.tolerance_s, target + self.tolerance_s, target)).fetchone()
        if row is None:
            self.counts["unmatched"] += 1
            return None
        self._db.execute("DELETE FROM pending WHERE sample_id=?", (row[0],))
        if not self._mine(row[5]):
            return None
        score = float(row[4]) if row[4] is not None else float("nan")
        return self._joined(int(row[1]), str(row[0]), float(row[3]), label_ts - row[2], score)

    def _mine(self, bundle: str | None) -> bool:
        """Was this prediction made by the bundle this join serves? Its label is used up either
        way: judged against another version's prediction it would say nothing true."""
        if self.bundle is None or bundle == self.bundle:
            return True
        self.counts["other_version"] += 1
        return False

    def _joined(self, index: int, sample_id: str, predicted: float, latency: float,
                score: float = float("nan")) -> Joined:
        latency = max(0.0, latency)
        self.counts["labelled"] += 1
        self.counts["latency_sum"] += latency
        return Joined(index, sample_id, predicted, latency, score)

    def expire(self, now: float | None = None) -> int:
        """Drop predictions whose label did not come in time, and keep the table bounded."""
        self.flush()
        now = time.time() if now is None else now
        expired = self._db.execute("DELETE FROM pending WHERE created < ?", (now - self.ttl_s,)).rowcount
        excess = self.pending - self.max_pending
        evicted = 0
        if excess > 0:
            evicted = self._db.execute(
                "DELETE FROM pending WHERE sample_id IN (SELECT sample_id FROM pending "
                "ORDER BY created LIMIT ?)", (excess,)).rowcount
        self.counts["expired"] += expired
        self.counts["evicted"] += evicted
        self._save_counts()
        return expired + evicted

    @property
    def pending(self) -> int:
        return len(self._fresh) + int(self._db.execute("SELECT COUNT(*) FROM pending").fetchone()[0])

    def figures(self) -> dict[str, float | None]:
        c = self.counts
        decided = c["labelled"] + c["expired"] + c["evicted"]
        return {"pending": self.pending, "labelled": c["labelled"], "expired": c["expired"],
                "coverage": round(c["labelled"] / c["predictions"], 4) if c["predictions"] else None,
                "coverage_of_decided": round(c["labelled"] / decided, 4) if decided else None,
                "mean_latency_s": round(c["latency_sum"] / c["labelled"], 3) if c["labelled"] else None,
                "unmatched_labels": c["unmatched"],
                "other_version_labels": c["other_version"]}

    def _save_counts(self) -> None:
        self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?,?)", list(self.counts.items()))
