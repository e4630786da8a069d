"""The hub's background work in an API process.

On SQLite (one machine, one process) the jobs of hub.fleet.jobs run in turn in one loop here:
judging rollouts, retrain triggers, sealing the audit trail, deciding audit-chain gaps whose
resend window passed, retention, and reloading the desired-state snapshot (changes made by the
CLI). A failing job is logged and tried again next round; it never stops the others.

On PostgreSQL the same jobs are tasks of the distributed queue (hub.fleet.queue): this process
runs a queue worker unless told not to (``edge-hub serve --no-jobs``; then ``edge-hub worker``
processes do the work), and a LISTEN connection keeps its caches in step with every other
process (hub.fleet.notify). A full reload every ``FULL_RELOAD_S`` is the safety net."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from fastapi import FastAPI

from hub.context import HubContext
from hub.fleet import jobs as fleet_jobs
from hub.fleet.jobs import JobContext
from hub.fleet.pg import is_postgres

log = logging.getLogger(__name__)

TRIGGERS_S = 2.0  # how often retrain triggers are judged
SNAPSHOT_S = 2.0  # SQLite: a change made by the CLI is seen within this
FULL_RELOAD_S = 60.0  # PostgreSQL: notices do the work; this only mends a lost one
AUDIT_GAPS_S = 10.0
RETENTION_S = 3600.0
LISTENING_TOKEN_TTL_S = 3600.0  # PostgreSQL: how long a known token is kept between notices


@dataclass
class Job:
    name: str
    every_s: float  # 0: every round
    run: Callable[[HubContext], object]
    last: float = 0.0


def _job_context(hub: HubContext) -> JobContext:
    return JobContext(hub.engine, hub.data_dir, hub.limits, changed=hub.desired.changed)


def jobs(evaluate_interval_s: float) -> list[Job]:
    return [Job("rollouts", evaluate_interval_s, lambda h: fleet_jobs.rollouts(_job_context(h))),
            Job("retrain-triggers", TRIGGERS_S, lambda h: fleet_jobs.triggers(_job_context(h))),
            Job("audit-seal", 0, lambda h: fleet_jobs.audit_seal(_job_context(h))),
            Job("audit-gaps", AUDIT_GAPS_S, lambda h: fleet_jobs.audit_gaps(_job_context(h))),
            Job("retention", RETENTION_S, lambda h: fleet_jobs.retention_sweep(_job_context(h))),
            Job("snapshot", SNAPSHOT_S, lambda h: h.desired.changed())]


async def run_jobs(hub: HubContext, evaluate_interval_s: float, todo: list[Job] | None = None) -> None:
    todo = jobs(evaluate_interval_s) if todo is None else todo
    start = time.monotonic()
    for job in todo:
        job.last = start
    while True:
        await asyncio.sleep(min(evaluate_interval_s, min((j.every_s for j in todo if j.every_s),
                                                         default=evaluate_interval_s)))
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


def lifespan(hub: HubContext, evaluate_interval_s: float, run_queue: bool = True,
             queues: list[str] | None = None) -> Lifespan:
    @contextlib.asynccontextmanager
    async def run(_: FastAPI) -> AsyncIterator[None]:
        tasks: list[asyncio.Task[None]] = []
        listener = None
        queue = None
        if is_postgres(hub.engine):
            from hub.fleet.notify import ChangeListener
            from hub.fleet.queue import HubQueue

            listener = ChangeListener(hub.engine, hub.tokens.forget, hub.desired.changed)
            await asyncio.to_thread(listener.start)
            # revocations arrive as notices (a lost connection drops every token): a known token
            # need not be asked for again every token_cache_s, and 5,000 of them cached at once
            # do not all expire in the same second
            if listener.ready and hub.tokens.ttl_s > 0:  # 0: no caching asked for, none given
                hub.tokens.ttl_s = max(hub.tokens.ttl_s, LISTENING_TOKEN_TTL_S)
            tasks.append(asyncio.create_task(run_jobs(hub, FULL_RELOAD_S, [
                Job("snapshot", FULL_RELOAD_S, lambda h: h.desired.changed())])))
            if run_queue:
                queue = HubQueue(_job_context(hub))
                tasks.append(asyncio.create_task(queue.work(queues, name=f"serve-{id(hub):x}")))
        else:
            tasks.append(asyncio.create_task(run_jobs(hub, evaluate_interval_s)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if queue is not None:
                queue.close()
            if listener is not None:
                await asyncio.to_thread(listener.stop)
    return run
