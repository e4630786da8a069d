"""An append-only, hash-chained audit log: each entry holds the sha256 of the one before it, so
an edited, removed, inserted or reordered entry breaks the chain at that place, and
``verify`` names the first entry that does not fit.

One JSON object per line (who, what, why, when), written with fsync: the log is small (model
switches, config changes, alarms, acknowledgements), and losing its tail on a power cut would
be worse than the cost of a sync per entry. The hub keeps the same structure."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

GENESIS = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    """sha256 over the canonical JSON of the entry without its own hash."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    line: int  # 1-based line in the file
    seq: int | None
    problem: str

    def __str__(self) -> str:
        return f"line {self.line} (entry {self.seq}): {self.problem}"


def verify_entries(entries: Iterator[tuple[int, str]]) -> tuple[int, ChainProblem | None]:
    """Check a chain given as (line number, text) pairs; return (entries checked, first problem)."""
    prev, expected_seq, count = GENESIS, 1, 0
    for line_no, text in entries:
        try:
            entry = json.loads(text)
        except ValueError:
            return count, ChainProblem(line_no, None, "not a JSON entry (edited or truncated)")
        seq = entry.get("seq") if isinstance(entry, dict) else None
        if not isinstance(entry, dict) or "hash" not in entry:
            return count, ChainProblem(line_no, seq, "not an audit entry")
        if entry.get("prev") != prev:
            what = "removed or reordered" if seq != expected_seq else "edited before it"
            return count, ChainProblem(line_no, seq, f"does not follow the entry before it "
                                                     f"(an entry was {what})")
        if seq != expected_seq:
            return count, ChainProblem(line_no, seq, f"sequence {seq} where {expected_seq} belongs")
        if entry_hash(entry) != entry["hash"]:
            return count, ChainProblem(line_no, seq, "its content does not match its hash (edited)")
        prev, expected_seq, count = entry["hash"], expected_seq + 1, count + 1
    return count, None


class AuditLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seq, self._prev = 0, GENESIS
        last = self._last_entry()
        if last is not None:
            self._seq, self._prev = int(last["seq"]), str(last["hash"])

    def _last_entry(self) -> dict[str, Any] | None:
        if not self.path.is_file():
            return None
        last = None
        with self.path.open("rb") as fh:
            for raw in fh:
                if raw.strip():
                    last = raw
        if last is None:
            return None
        try:
            doc: dict[str, Any] = json.loads(last)
            return doc
        except ValueError:
            # a torn last line (power cut mid-write): the chain continues from the last whole entry
            log.error("%s ends with a damaged entry; 'audit verify' will name it", self.path)
            return None

    def append(self, actor: str, action: str, subject: str, why: str = "",
               detail: dict[str, Any] | None = None) -> dict[str, Any]:
        with self._lock:
            entry: dict[str, Any] = {"seq": self._seq + 1, "at": time.time(), "actor": actor,
                                     "action": action, "subject": subject, "why": why,
                                     "detail": detail or {}, "prev": self._prev}
            entry["hash"] = entry_hash(entry)
            line = json.dumps(entry, sort_keys=True, separators=(",", ":"), default=str) + "\n"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
                fh.flush()
                os.fsync(fh.fileno())
            self._seq, self._prev = entry["seq"], entry["hash"]
            return entry

    def lines(self) -> Iterator[tuple[int, str]]:
        if not self.path.exists():
            return
        with self.path.open(encoding="utf-8", errors="replace") as fh:
            for n, text in enumerate(fh, 1):
                if text.strip():
                    yield n, text

    def verify(self) -> tuple[int, ChainProblem | None]:
        return verify_entries(self.lines())

    def export(self, since: float = 0.0) -> Iterator[dict[str, Any]]:
        for _, text in self.lines():
            try:
                entry = json.loads(text)
            except ValueError:
                continue
            if isinstance(entry, dict) and float(entry.get("at", 0)) >= since:
                yield entry
