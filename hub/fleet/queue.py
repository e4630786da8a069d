"""The hub's background work on a distributed task queue: procrastinate on the hub's own
PostgreSQL (its tables in the hub's schema, migration 0004).

Why procrastinate: it needs nothing but the PostgreSQL the hub already runs (no broker to
operate at a plant), jobs are rows deferred in the same database the hub writes, and it has
what exactly-once work needs: queueing locks (one retrain queued per model), locks (one job of
a kind running at a time, fleet-wide), periodic tasks deferred once per tick whatever the number
of workers, worker heartbeats to find the jobs of a worker that died, and retries. (Celery or
RQ need a broker; pgqueuer, the other PostgreSQL queue, has no queueing locks.)

Queues: triggers, retrain, rollouts, audit, retention. Any number of ``edge-hub worker``
processes on any machine that reaches the database take jobs; ``edge-hub serve`` runs one in
process unless ``--no-jobs``. Queue names on the wire carry the schema (``<schema>.retrain``)
outside ``public``, so the queue's own NOTIFY channels are per hub as well.

A worker killed mid-job stops beating; after ``STALLED_S`` another worker's ``recover`` task
puts the job back to do, and it runs again from its start (a retrain publishes nothing before
its bundle is built, signed and judged). A job that raises is marked failed, and the reason is
written to the hub's history as ``job_failed``."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import procrastinate
from procrastinate import exceptions as pexc
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.fleet import jobs, metrics
from hub.fleet.jobs import JobContext
from hub.fleet.pg import conninfo, is_postgres, schema_of
from hub.storage import RetrainRun, record

log = logging.getLogger(__name__)

QUEUES = ("triggers", "retrain", "rollouts", "audit", "retention")
HEARTBEAT_S = 1.0
STALLED_S = 5.0  # a worker silent this long is taken for dead: its jobs are done again
T = TypeVar("T")


class QueueError(AgentError):
    """A queue request that cannot be honoured (the message says why)."""


def check_queues(names: Iterable[str] | None) -> list[str]:
    chosen = list(names or QUEUES)
    unknown = [n for n in chosen if n not in QUEUES]
    if unknown:
        raise QueueError(f"unknown queue {', '.join(map(repr, unknown))}; the queues are "
                         f"{', '.join(QUEUES)}")
    return chosen


class HubQueue:
    """The procrastinate app of one hub (its engine's schema), with the hub's tasks."""

    def __init__(self, ctx: JobContext) -> None:
        if not is_postgres(ctx.engine):
            raise QueueError("the task queue needs PostgreSQL (--db postgresql+psycopg://...); "
                             "on SQLite edge-hub serve runs the jobs in its own process")
        self.ctx = ctx
        self.schema = schema_of(ctx.engine)
        self.conninfo = conninfo(ctx.engine)
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(
            conninfo=self.conninfo, min_size=1, max_size=4))
        self._defer_app: procrastinate.App | None = None
        ctx.start_retrain = RetrainStarter(self)
        self._register()

    def queue(self, name: str) -> str:
        return name if self.schema == "public" else f"{self.schema}.{name}"

    # -- tasks ------------------------------------------------------------------------------------
    def _register(self) -> None:
        app, ctx, q = self.app, self.ctx, self.queue
        every = {"rollouts": "* * * * * *", "triggers": "* * * * * */2", "audit_seal": "* * * * * *",
                 "audit_gaps": "* * * * * */10", "recover": "* * * * * */2", "retention": "7 * * * *"}

        def periodic(name: str, queue: str, run: Callable[[JobContext], object]) -> None:
            @app.periodic(cron=every[name], periodic_id=name)
            @app.task(name=f"hub.{name}", queue=q(queue), lock=f"{self.schema}:{name}",
                      queueing_lock=f"{self.schema}:{name}")
            @timed(name, ctx)
            def task(timestamp: int) -> None:
                run(ctx)

        periodic("rollouts", "rollouts", jobs.rollouts)
        periodic("triggers", "triggers", jobs.triggers)
        periodic("audit_seal", "audit", jobs.audit_seal)
        periodic("audit_gaps", "audit", jobs.audit_gaps)
        periodic("retention", "retention", jobs.retention_sweep)

        @app.task(name="hub.evaluate_triggers", queue=q("triggers"))
        @timed("triggers", ctx)
        def evaluate_triggers() -> None:  # deferred on demand (and by the race tests)
            jobs.triggers(ctx)

        @app.task(name="hub.evaluate_rollouts", queue=q("rollouts"))
        @timed("rollouts", ctx)
        def evaluate_rollouts() -> None:
            jobs.rollouts(ctx)

        @app.task(name="hub.retrain", queue=q("retrain"), retry=procrastinate.RetryStrategy(
            max_attempts=3, wait=2, retry_exceptions={OperationalError}))
        @timed("retrain", ctx)
        def retrain(model: str, run_id: int) -> None:
            outcome = jobs.retrain(ctx, model, int(run_id))
            metrics.RETRAINS.labels(outcome=outcome).inc()

        for name in QUEUES:  # each queue's workers recover its jobs (a lock held by a dead
            self._recover(name, every["recover"])  # worker's job would block its kind for good)

        self.tasks = {"retrain": retrain, "evaluate_triggers": evaluate_triggers,
                      "evaluate_rollouts": evaluate_rollouts}

    def _recover(self, name: str, cron: str) -> None:
        app, queue = self.app, self.queue(name)

        @app.periodic(cron=cron, periodic_id=f"recover-{name}")
        @app.task(name=f"hub.recover_{name}", queue=queue, queueing_lock=f"{self.schema}:recover:{name}")
        async def recover(timestamp: int) -> None:
            for job in await app.job_manager.get_stalled_jobs(queue=queue, seconds_since_heartbeat=STALLED_S):
                log.warning("job %s (%s) of a worker that stopped beating: done again", job.id, job.task_name)
                await app.job_manager.retry_job(job)

    # -- deferring from synchronous code (a job's thread, a request, the CLI) ----------------------
    def defer_app(self) -> procrastinate.App:
        """An app of its own with a synchronous pool: it only defers (by task name)."""
        if self._defer_app is None:
            self._defer_app = procrastinate.App(connector=procrastinate.SyncPsycopgConnector(
                conninfo=self.conninfo, min_size=1, max_size=2))
            self._defer_app.open()
        return self._defer_app

    def defer(self, task: str, lock: str | None = None, queueing_lock: str | None = None,
              **kwargs: Any) -> int:
        name = f"hub.{task}"
        deferrer = self.defer_app().configure_task(name, queue=self.app.tasks[name].queue, lock=lock,
                                                   queueing_lock=queueing_lock)
        return int(deferrer.defer(**kwargs))

    def defer_retrain(self, model: str, why: str) -> int | None:
        """Queue a retrain of ``model`` (one at a time per model); None if one is queued."""
        run_id = jobs.queue_run(self.ctx.engine, model, why)
        lock = f"{self.schema}:retrain:{model}"
        try:
            self.defer("retrain", lock=lock, queueing_lock=lock, model=model, run_id=run_id)
        except pexc.AlreadyEnqueued:
            with Session(self.ctx.engine) as s, s.begin():
                run = s.get(RetrainRun, run_id)
                if run is not None:
                    run.status, run.detail = "skipped", {"error": "a retrain of this model is already queued"}
            return None
        return run_id

    def close(self) -> None:
        if self._defer_app is not None:
            self._defer_app.close()
            self._defer_app = None

    # -- running -------------------------------------------------------------------------------------
    async def work(self, queues: Iterable[str] | None = None, concurrency: int = 2,
                   name: str = "hub-worker", install_signal_handlers: bool = False) -> None:
        chosen = [self.queue(n) for n in check_queues(queues)]
        async with self.app.open_async():
            await self.app.run_worker_async(
                queues=chosen, concurrency=concurrency, name=name, wait=True,
                install_signal_handlers=install_signal_handlers, delete_jobs="successful",
                update_heartbeat_interval=HEARTBEAT_S, stalled_worker_timeout=STALLED_S,
                fetch_job_polling_interval=1.0, abort_job_polling_interval=5.0,
                shutdown_graceful_timeout=5.0)


class RetrainStarter:
    """What retrain triggers call to start a run: a job on the retrain queue."""

    def __init__(self, queue: HubQueue) -> None:
        self.q = queue

    def busy(self, model: str) -> bool:
        return jobs.busy(self.q.ctx.engine, model)

    def __call__(self, model: str, why: str) -> None:
        self.q.defer_retrain(model, why)


def timed(name: str, ctx: JobContext) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Duration and outcome in /metrics; a failure's reason in the history, then re-raised so
    the queue marks the job failed (or retries it)."""

    def wrap(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> T:
            start = time.perf_counter()
            try:
                result = fn(*args, **kwargs)
            except Exception as exc:
                metrics.JOBS.labels(task=name, outcome="failed").inc()
                reason = f"{type(exc).__name__}: {exc}"[:1500]
                log.error("job %s failed: %s", name, reason)
                try:
                    with Session(ctx.engine) as s, s.begin():
                        record(s, str(kwargs.get("model") or "-"), "-", "job_failed",
                               detail=f"{name} {kwargs}: {reason}"[:2000])
                except Exception:  # the database is away: the queue still has the job failed
                    log.exception("could not record the failure of job %s", name)
                raise
            finally:
                metrics.JOB_SECONDS.labels(task=name).observe(time.perf_counter() - start)
            metrics.JOBS.labels(task=name, outcome="done").inc()
            return result
        return run
    return wrap


def run_worker(queue: HubQueue, queues: Iterable[str] | None, concurrency: int) -> None:
    """edge-hub worker: until SIGINT/SIGTERM."""
    asyncio.run(queue.work(queues, concurrency, install_signal_handlers=True))
