"""How long the hub keeps each kind of data, and the job that forgets the rest.

Kinds: ``telemetry`` (the gateways' records), ``samples`` (labelled training samples) and
``audit`` (the gateways' audit entries), each with its own number of days. The hub's own audit
trail (history) is a hash chain from its first entry and is never cut.

On PostgreSQL telemetry is partitioned by UTC day of the record's creation (migration 0004):
the sweep drops whole partitions whose day ended before the cut-off (no row-by-row delete, no
bloat), and deletes only in the default partition (records whose day had no partition).
``ensure_partitions`` makes the coming days' partitions ahead of time. On SQLite the sweep
deletes rows."""

from __future__ import annotations

import calendar
import logging
import re
import time
from typing import Any

from sqlalchemy import delete, select, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.fleet.pg import is_postgres
from hub.storage import AgentAudit, RetentionPolicy, Telemetry, TrainingSample, record

log = logging.getLogger(__name__)

DAY = 86400
AHEAD_DAYS = 7
DEFAULTS = {"telemetry": 30, "samples": 365, "audit": 730}
MAX_DAYS = 36500
_PARTITION = re.compile(r"^telemetry_d(\d{8})$")


class RetentionError(AgentError):
    """A retention setting that cannot be honoured (the message says why)."""


def parse_settings(items: list[str]) -> dict[str, int]:
    """KIND=DAYS pairs, each checked: a known kind and a whole number of days >= 1."""
    out: dict[str, int] = {}
    for item in items:
        kind, sep, value = item.partition("=")
        kind = kind.strip()
        if not sep or kind not in DEFAULTS:
            raise RetentionError(f"{item!r}: use KIND=DAYS with KIND one of {', '.join(DEFAULTS)}")
        try:
            days = int(value)
        except ValueError:
            raise RetentionError(f"{item!r}: DAYS must be a whole number of days (1 to {MAX_DAYS})") from None
        if not 1 <= days <= MAX_DAYS:
            raise RetentionError(f"{item!r}: keep at least 1 day and at most {MAX_DAYS} "
                                 f"(got {days}; 0 or less would forget everything)")
        out[kind] = days
    return out


def get(engine: Engine) -> dict[str, int]:
    with Session(engine) as s:
        stored = {r.kind: r.days for r in s.scalars(select(RetentionPolicy))}
    return {**DEFAULTS, **stored}


def set_days(engine: Engine, settings: dict[str, int], actor: str) -> dict[str, int]:
    with Session(engine) as s, s.begin():
        for kind, days in settings.items():
            row = s.get(RetentionPolicy, kind)
            if row is None:
                s.add(RetentionPolicy(kind=kind, days=days, updated=time.time(), actor=actor))
            else:
                row.days, row.updated, row.actor = days, time.time(), actor
        record(s, "-", "-", "retention", detail=" ".join(f"{k}={v}" for k, v in sorted(settings.items())),
               actor=actor)
    return get(engine)


def covered(engine: Engine, now: float | None = None) -> dict[str, Any]:
    """What period the hub's data covers: per kind, the days kept and the oldest time kept."""
    now = time.time() if now is None else now
    days = get(engine)
    return {kind: {"days": d, "since": now - d * DAY} for kind, d in days.items()}


# -- partitions (PostgreSQL) ----------------------------------------------------------------------
def partitions(conn: Connection) -> dict[str, int]:
    """telemetry's day partitions: name -> UTC day number."""
    rows = conn.execute(text(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE p.relname = 'telemetry' AND n.nspname = current_schema()")).scalars()
    out = {}
    for name in rows:
        m = _PARTITION.match(name)
        if m:
            out[name] = calendar.timegm(time.strptime(m.group(1), "%Y%m%d")) // DAY
    return out


def partition_name(day: int) -> str:
    return time.strftime("telemetry_d%Y%m%d", time.gmtime(day * DAY))


def ensure_partitions(engine: Engine, now: float | None = None, ahead: int = AHEAD_DAYS) -> list[str]:
    """Make the partitions of yesterday to ``ahead`` days on; rows of those days already in the
    default partition move into their new partition in the same transaction."""
    if not is_postgres(engine):
        return []
    today = int((time.time() if now is None else now) // DAY)
    made = []
    with engine.begin() as conn:
        have = set(partitions(conn).values())
        for day in range(today - 1, today + ahead + 1):
            if day in have:
                continue
            name, lo, hi = partition_name(day), day * DAY, (day + 1) * DAY
            conn.execute(text(f"CREATE TABLE {name} (LIKE telemetry INCLUDING DEFAULTS)"))
            conn.execute(text(f"WITH moved AS (DELETE FROM telemetry_default WHERE created >= {lo} "
                              f"AND created < {hi} RETURNING *) INSERT INTO {name} SELECT * FROM moved"))
            conn.execute(text(f"ALTER TABLE telemetry ATTACH PARTITION {name} "
                              f"FOR VALUES FROM ({lo}) TO ({hi})"))
            made.append(name)
    if made:
        log.info("telemetry partitions made: %s", ", ".join(made))
    return made


# -- the sweep ------------------------------------------------------------------------------------
def sweep(engine: Engine, now: float | None = None) -> dict[str, int]:
    """Forget what is older than each kind's days. Returns what went, per kind (telemetry:
    partitions dropped on PostgreSQL plus rows deleted)."""
    now = time.time() if now is None else now
    days = get(engine)
    done = {"telemetry_partitions": 0, "telemetry_rows": 0, "samples": 0, "audit": 0}
    cut = now - days["telemetry"] * DAY
    if is_postgres(engine):
        with engine.begin() as conn:
            for name, day in sorted(partitions(conn).items()):
                if (day + 1) * DAY <= cut:  # the whole day is older than the cut-off
                    conn.execute(text(f"DROP TABLE {name}"))
                    done["telemetry_partitions"] += 1
            done["telemetry_rows"] = _count(conn.execute(text(
                "DELETE FROM telemetry_default WHERE created < :cut"), {"cut": cut}))
    else:
        with Session(engine) as s, s.begin():
            done["telemetry_rows"] = _count(s.execute(delete(Telemetry).where(Telemetry.created < cut)))
    with Session(engine) as s, s.begin():
        done["samples"] = _count(s.execute(delete(TrainingSample).where(
            TrainingSample.received < now - days["samples"] * DAY)))
        done["audit"] = _count(s.execute(delete(AgentAudit).where(
            AgentAudit.received < now - days["audit"] * DAY)))
    if any(done.values()):
        log.info("retention: %s", done)
    return done


def _count(result: Any) -> int:
    """Rows a DELETE removed."""
    return int(result.rowcount or 0)
