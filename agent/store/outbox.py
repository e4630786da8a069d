"""SQLite store-and-forward: append, peek a batch, acknowledge a batch.

Everything that must reach the hub is written here first. Guarantees:
- a record is acknowledged as written only after its transaction commits (WAL; with
  synchronous=FULL it also survives power loss);
- the store stays under its disk budget by evicting the oldest records of the lowest
  priority first, and it counts what it evicted, per kind;
- the event loop never waits on the disk: ``AsyncOutbox`` runs every call on one writer thread.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from agent.errors import OutboxError
from agent.store.audit import AuditLog
from agent.store.codec import encode_json

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
ROW_OVERHEAD = 48  # bytes SQLite spends per row beyond the payload (header, index entry)


class Priority(IntEnum):
    READINGS = 0
    PREDICTIONS = 1
    LABELS = 2
    EVENTS = 3


@dataclass(frozen=True, slots=True)
class NewRecord:
    kind: str
    priority: int
    payload: bytes
    items: int = 1  # logical entries inside (a readings batch holds many readings)
    audit_seq: int = 0  # an audit record: the highest audit log entry it carries


@dataclass(frozen=True, slots=True)
class StoredRecord:
    seq: int
    kind: str
    priority: int
    created: float
    payload: bytes
    items: int


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    items: int
    bytes: int
    budget: int
    evicted_records: int
    evicted_items: int
    evicted_by_kind: dict[str, int]
    last_seq: int
    refused_records: int = 0  # refused by the hub as malformed, kept aside (see Outbox.refuse)


def _migrate(db: sqlite_utils.Database) -> None:
    """Versioned schema steps; each runs once, recorded in PRAGMA user_version."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < 1:
        records, evicted, meta = db.table("records"), db.table("evicted"), db.table("meta")
        records.create(
            {"seq": int, "kind": str, "priority": int, "created": float, "payload": bytes,
             "nbytes": int, "items": int},
            pk="seq", not_null={"kind", "priority", "created", "payload", "nbytes", "items"},
            if_not_exists=True,
        )
        records.create_index(["priority", "seq"], index_name="records_evict",
                                   if_not_exists=True)
        evicted.create({"kind": str, "records": int, "items": int}, pk="kind",
                             if_not_exists=True)
        meta.create({"key": str, "value": int}, pk="key", if_not_exists=True)
    if version < 2:
        # records the hub refused as malformed: kept for the operator, out of the upload queue
        db.table("refused").create(
            {"seq": int, "kind": str, "priority": int, "created": float, "payload": bytes,
             "items": int, "reason": str, "refused_at": float},
            pk="seq", if_not_exists=True)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


class Outbox:
    """Synchronous core; use from one thread (``AsyncOutbox`` arranges that)."""

    def __init__(self, path: Path, disk_budget_bytes: int, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.budget = disk_budget_bytes
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute(f"PRAGMA synchronous={synchronous}")
            self._conn.execute("PRAGMA busy_timeout=5000")
            with self._conn:
                _migrate(sqlite_utils.Database(self._conn))
            row = self._conn.execute(
                "SELECT COUNT(*), COALESCE(SUM(nbytes), 0), COALESCE(MAX(seq), 0) FROM records"
            ).fetchone()
        except (sqlite3.DatabaseError, OSError) as exc:
            raise OutboxError(f"{path}: cannot open the outbox database ({exc}); check that "
                              "the state directory is writable and the disk is not full") from exc
        self._depth, self._bytes, self._last_seq = int(row[0]), int(row[1]), int(row[2])
        # AUTOINCREMENT-like monotonic seq even after the newest rows were acked and deleted
        stored = self._conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        self._last_seq = max(self._last_seq, int(stored[0]) if stored else 0)

    def close(self) -> None:
        try:
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self._conn.close()

    def append(self, records: Sequence[NewRecord]) -> int:
        """Write records in one transaction; return the last sequence number given out."""
        if not records:
            return self._last_seq
        now = time.time()
        first = self._last_seq + 1
        rows = [(first + i, r.kind, r.priority, now, r.payload, len(r.payload) + ROW_OVERHEAD,
                 r.items) for i, r in enumerate(records)]
        added = sum(row[5] for row in rows)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.executemany("INSERT INTO records VALUES (?,?,?,?,?,?,?)", rows)
            last = first + len(rows) - 1
            self._conn.execute(
                "INSERT INTO meta VALUES ('last_seq', ?) ON CONFLICT(key) DO UPDATE SET value=?",
                (last, last))
            audit_seq = max(r.audit_seq for r in records)
            if audit_seq:  # in the same transaction: the mark never runs ahead of the records
                self._conn.execute(
                    "INSERT INTO meta VALUES ('audit_seq', ?) ON CONFLICT(key) DO UPDATE SET "
                    "value=MAX(value, excluded.value)", (audit_seq,))
            evicted = self._evict(self._bytes + added - self.budget) if (
                self._bytes + added > self.budget) else (0, 0)
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: write failed ({exc})") from exc
        self._last_seq = last
        self._depth += len(rows) - evicted[0]
        self._bytes += added - evicted[1]
        return last

    def _evict(self, excess: int) -> tuple[int, int]:
        """Delete oldest lowest-priority rows until ``excess`` bytes are freed (inside the txn)."""
        freed = count = 0
        victims: list[tuple[int, str, int, int]] = []
        cursor = self._conn.execute(
            "SELECT seq, kind, nbytes, items FROM records ORDER BY priority, seq")
        for seq, kind, nbytes, items in cursor:
            victims.append((seq, kind, nbytes, items))
            freed += nbytes
            count += 1
            if freed >= excess:
                break
        cursor.close()
        self._conn.executemany("DELETE FROM records WHERE seq=?", [(v[0],) for v in victims])
        per_kind: dict[str, list[int]] = {}
        for _, kind, _, items in victims:
            acc = per_kind.setdefault(kind, [0, 0])
            acc[0] += 1
            acc[1] += items
        self._conn.executemany(
            "INSERT INTO evicted VALUES (?,?,?) ON CONFLICT(kind) DO UPDATE SET "
            "records=records+excluded.records, items=items+excluded.items",
            [(k, v[0], v[1]) for k, v in per_kind.items()])
        log.warning("outbox over its %d-byte budget: evicted %d oldest records (%s)",
                    self.budget, count, ", ".join(f"{k}={v[0]}" for k, v in per_kind.items()))
        return count, freed

    def audit_mark(self) -> int:
        """The highest audit log entry ever handed to the outbox (0: none, or an older outbox)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key='audit_seq'").fetchone()
        return int(row[0]) if row else 0

    def catch_up_audit(self, entries: Sequence[dict[str, Any]], chunk: int = 500) -> int:
        """Append the audit entries the outbox never received (an agent killed between the
        audit log's fsync and the next flush); return how many. Entries already handed over are
        left alone; one re-sent twice is harmless (the hub keeps each sequence number once)."""
        mark = self.audit_mark()
        missing = [e for e in entries if isinstance(e.get("seq"), int) and e["seq"] > mark]
        records = [NewRecord("audit", Priority.EVENTS, encode_json(missing[i:i + chunk]),
                             len(missing[i:i + chunk]), max(e["seq"] for e in missing[i:i + chunk]))
                   for i in range(0, len(missing), chunk)]
        if records:
            self.append(records)
            log.info("outbox: %d audit entries after %d were not handed over before the last stop; "
                     "queued from the audit log", len(missing), mark)
        return len(missing)

    def peek(self, limit: int = 500, max_bytes: int = 4 << 20) -> list[StoredRecord]:
        """Oldest records first, without removing them."""
        out: list[StoredRecord] = []
        size = 0
        for row in self._conn.execute(
            "SELECT seq, kind, priority, created, payload, items FROM records "
            "ORDER BY seq LIMIT ?", (limit,)
        ):
            if out and size + len(row[4]) > max_bytes:
                break
            out.append(StoredRecord(*row))
            size += len(row[4])
        return out

    def ack(self, seqs: Sequence[int]) -> int:
        """Delete delivered records. Unknown seqs (already evicted or acked) are ignored."""
        if not seqs:
            return 0
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            removed = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(nbytes),0) FROM records WHERE seq IN "
                f"({','.join('?' * len(seqs))})", list(seqs)).fetchone()
            self._conn.executemany("DELETE FROM records WHERE seq=?", [(s,) for s in seqs])
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: ack failed ({exc})") from exc
        self._depth -= int(removed[0])
        self._bytes -= int(removed[1])
        return int(removed[0])

    def refuse(self, seqs: Sequence[int], reason: str) -> int:
        """Move records the hub refused as malformed out of the upload queue, into ``refused``
        with the hub's reason: one bad record must not block everything behind it, and it is
        kept (not deleted) so that an operator can look at it and the count is reported."""
        if not seqs:
            return 0
        marks = ",".join("?" * len(seqs))
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            removed = self._conn.execute(
                f"SELECT COUNT(*), COALESCE(SUM(nbytes),0) FROM records WHERE seq IN ({marks})",
                list(seqs)).fetchone()
            self._conn.execute(
                "INSERT OR REPLACE INTO refused (seq, kind, priority, created, payload, items, "
                f"reason, refused_at) SELECT seq, kind, priority, created, payload, items, ?, ? "
                f"FROM records WHERE seq IN ({marks})", [reason[:1000], time.time(), *seqs])
            self._conn.execute(f"DELETE FROM records WHERE seq IN ({marks})", list(seqs))
            self._conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            self._rollback()
            raise OutboxError(f"{self.path}: moving refused records aside failed ({exc})") from exc
        self._depth -= int(removed[0])
        self._bytes -= int(removed[1])
        return int(removed[0])

    def stats(self) -> OutboxStats:
        items = self._conn.execute("SELECT COALESCE(SUM(items),0) FROM records").fetchone()[0]
        ev = self._conn.execute("SELECT kind, records, items FROM evicted").fetchall()
        refused = self._conn.execute("SELECT COUNT(*) FROM refused").fetchone()[0]
        return OutboxStats(
            depth=self._depth, items=int(items), bytes=self._bytes, budget=self.budget,
            evicted_records=sum(r[1] for r in ev), evicted_items=sum(r[2] for r in ev),
            evicted_by_kind={r[0]: r[2] for r in ev}, last_seq=self._last_seq,
            refused_records=int(refused),
        )

    def _rollback(self) -> None:
        try:
            self._conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # no transaction was open


class AsyncOutbox:
    """The outbox on its own writer thread, so disk latency never stalls the event loop."""

    def __init__(self, path: Path, disk_budget_bytes: int, synchronous: str = "NORMAL") -> None:
        self._args = (path, disk_budget_bytes, synchronous)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self._outbox: Outbox | None = None
        self.path = path

    async def _call(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def __aenter__(self) -> AsyncOutbox:
        self._outbox = await self._call(Outbox, *self._args)
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._outbox is not None:
            await self._call(self._outbox.close)
        self._pool.shutdown(wait=True)

    @property
    def core(self) -> Outbox:
        if self._outbox is None:
            raise OutboxError("outbox used before it was opened")
        return self._outbox

    async def append(self, records: Sequence[NewRecord]) -> int:
        return int(await self._call(self.core.append, records))

    async def catch_up_audit(self, audit: AuditLog) -> int:
        """At start: every audit log entry the outbox never got goes in now, before new ones."""
        return int(await self._call(lambda: self.core.catch_up_audit(list(audit.export()))))

    async def peek(self, limit: int = 500, max_bytes: int = 4 << 20) -> list[StoredRecord]:
        result: list[StoredRecord] = await self._call(self.core.peek, limit, max_bytes)
        return result

    async def ack(self, seqs: Sequence[int]) -> int:
        return int(await self._call(self.core.ack, seqs))

    async def refuse(self, seqs: Sequence[int], reason: str) -> int:
        return int(await self._call(self.core.refuse, seqs, reason))

    async def stats(self) -> OutboxStats:
        result: OutboxStats = await self._call(self.core.stats)
        return result
