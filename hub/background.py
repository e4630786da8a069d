"""The hub's background work, as named jobs run in turn by one loop per process: judging
rollouts, retrain triggers, sealing the audit trail, deciding audit-chain gaps whose resend
window passed, and reloading the desired-state snapshot (changes made by other processes).

Each job is a plain function of the HubContext run in a thread; a failing job is logged and
tried again next round, it never stops the others. (When the hub runs on a task queue, these
are its periodic jobs.)"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI
from sqlalchemy.orm import Session

from hub.audit import seal
from hub.context import HubContext
from hub.retrain import evaluate_triggers
from hub.rollouts import evaluate
from hub.storage.ingest import check_pending_chains

log = logging.getLogger(__name__)

TRIGGERS_S = 2.0  # how often retrain triggers are judged
SNAPSHOT_S = 2.0  # a change made by another process (the CLI, another worker) is seen within this
AUDIT_GAPS_S = 10.0


@dataclass
class Job:
    name: str
    every_s: float  # 0: every round
    run: Callable[[HubContext], None]
    last: float = 0.0


def _rollouts(hub: HubContext) -> None:
    decisions = evaluate(hub.engine)
    for d in decisions:
        log.info("rollout decision: %s", d)
    if decisions:
        hub.desired.changed()


def _triggers(hub: HubContext) -> None:
    for started in evaluate_triggers(hub.engine, hub.data_dir):
        log.info("retrain started: %s", started)


def _seal(hub: HubContext) -> None:
    seal(hub.engine)


def _snapshot(hub: HubContext) -> None:
    hub.desired.changed()


def _audit_gaps(hub: HubContext) -> None:
    with Session(hub.engine) as s, s.begin():
        check_pending_chains(s, hub.limits.audit_resend_window_s)


def jobs(evaluate_interval_s: float) -> list[Job]:
    return [Job("rollouts", evaluate_interval_s, _rollouts),
            Job("retrain-triggers", TRIGGERS_S, _triggers),
            Job("audit-seal", 0, _seal),
            Job("audit-gaps", AUDIT_GAPS_S, _audit_gaps),
            Job("snapshot", SNAPSHOT_S, _snapshot)]


async def run_jobs(hub: HubContext, evaluate_interval_s: float) -> None:
    todo = jobs(evaluate_interval_s)
    start = time.monotonic()
    for job in todo:
        job.last = start
    while True:
        await asyncio.sleep(evaluate_interval_s)
        for job in todo:
            now = time.monotonic()
            if now - job.last < job.every_s:
                continue
            job.last = now
            try:
                await asyncio.to_thread(job.run, hub)
            except Exception:  # the database may be away for a moment: try again next round
                log.exception("background job %s failed", job.name)


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def lifespan(hub: HubContext, evaluate_interval_s: float) -> Lifespan:
    @contextlib.asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(run_jobs(hub, evaluate_interval_s))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return run
