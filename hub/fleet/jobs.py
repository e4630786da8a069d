"""The hub's background work as plain functions of a ``JobContext``: what the task queue's
tasks run (hub.fleet.queue, on PostgreSQL) and what the in-process loop runs (hub.background,
on SQLite). Each takes the hub-wide lock of its kind (hub.fleet.pg.exclusive), so however many
workers run it at the same moment, a rollout step is promoted once and a trigger starts one run.

A job that cannot do what it was asked (its model is gone, its run is unknown) raises
``JobRefused`` with the reason and changes nothing: the queue marks it failed."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.audit import seal
from hub.fleet import retention
from hub.fleet.pg import exclusive
from hub.limits import HubLimits
from hub.retrain import RetrainStarter, evaluate_triggers, run_retrain
from hub.rollouts import evaluate
from hub.storage import ModelPolicy, ModelVersion, RetrainRun, record
from hub.storage.ingest import check_pending_chains

log = logging.getLogger(__name__)


class JobRefused(AgentError):
    """A job whose payload names something that is not there (the message says what)."""


@dataclass
class JobContext:
    engine: Engine
    data_dir: Path
    limits: HubLimits = field(default_factory=HubLimits)
    # called with the targets a decision changed (in-process caches; None: every target)
    changed: Callable[[Iterable[str] | None], None] | None = None
    start_retrain: RetrainStarter | None = None


def rollouts(ctx: JobContext) -> list[str]:
    with exclusive(ctx.engine, "rollouts"):
        decisions = evaluate(ctx.engine)
    for d in decisions:
        log.info("rollout decision: %s", d)
    if decisions and ctx.changed is not None:
        ctx.changed(None)
    return decisions


def triggers(ctx: JobContext) -> list[str]:
    with exclusive(ctx.engine, "triggers"):
        started = evaluate_triggers(ctx.engine, ctx.data_dir, start=ctx.start_retrain)
    for s in started:
        log.info("retrain started: %s", s)
    return started


def audit_seal(ctx: JobContext) -> int:
    with exclusive(ctx.engine, "audit-seal"):  # one sealer: two would fork the chain
        return seal(ctx.engine)


def audit_gaps(ctx: JobContext) -> None:
    with exclusive(ctx.engine, "audit-gaps"), Session(ctx.engine) as s, s.begin():
        check_pending_chains(s, ctx.limits.audit_resend_window_s)


def retention_sweep(ctx: JobContext) -> dict[str, int]:
    with exclusive(ctx.engine, "retention"):
        retention.ensure_partitions(ctx.engine)
        return retention.sweep(ctx.engine)


def model_exists(engine: Engine, model: str) -> bool:
    with Session(engine) as s:
        return bool(s.get(ModelPolicy, model) is not None or s.scalar(
            select(func.count()).select_from(ModelVersion).where(ModelVersion.name == model)))


def queue_run(engine: Engine, model: str, why: str) -> int:
    """The RetrainRun a queued retrain job will run (status queued until a worker takes it)."""
    with Session(engine) as s, s.begin():
        run = RetrainRun(model=model, at=time.time(), status="queued", trigger=why[:1000], detail={})
        s.add(run)
        s.flush()
        return run.id


def busy(engine: Engine, model: str) -> bool:
    with Session(engine) as s:
        return bool(s.scalar(select(func.count()).select_from(RetrainRun).where(
            RetrainRun.model == model, RetrainRun.status.in_(("queued", "running")))))


def retrain(ctx: JobContext, model: str, run_id: int) -> str:
    """Run a queued retrain; a retried job (its worker died) runs the same run again from the
    start: nothing of a run is published before its bundle is built, signed and judged."""
    with Session(ctx.engine) as s:
        run = s.get(RetrainRun, run_id)
        status = run.status if run is not None else None
        trigger = run.trigger if run is not None else ""
        run_model = run.model if run is not None else None
        run_at = run.at if run is not None else 0.0
    if run is None:
        raise JobRefused(f"retrain job for {model}: no retrain run {run_id} "
                         f"(edge-hub retrain status {model})")
    if run_model != model:
        raise JobRefused(f"retrain job for {model}: run {run_id} belongs to {run_model}")
    if not model_exists(ctx.engine, model):
        _finish(ctx.engine, run_id, "failed", f"model {model} no longer exists (edge-hub models list)")
        raise JobRefused(f"retrain job: model {model} no longer exists (edge-hub models list)")
    if status not in ("queued", "running"):
        log.info("retrain run %d of %s is already %s: nothing to do", run_id, model, status)
        return str(status)
    if status == "running":  # a worker took it and died: did it get as far as publishing?
        published = published_by(ctx.engine, model, trigger, run_at)
        if published is not None:
            reason = (f"the worker running it stopped after publishing {model} {published}, before "
                      f"its rollout; not trained again (edge-hub deploy {model} {published} --to ...)")
            _finish(ctx.engine, run_id, "failed", reason, version=published)
            return "failed"
    done = run_retrain(ctx.engine, ctx.data_dir, model, trigger, run_id=run_id)
    return done.status


def published_by(engine: Engine, model: str, trigger: str, since: float) -> str | None:
    """The version a run of ``trigger`` published (its lineage names the trigger), if any."""
    with Session(engine) as s:
        for version, manifest in s.execute(select(ModelVersion.version, ModelVersion.manifest).where(
                ModelVersion.name == model, ModelVersion.created >= since)):
            if (manifest.get("lineage") or {}).get("trigger") == trigger:
                return str(version)
    return None


def _finish(engine: Engine, run_id: int, status: str, reason: str, version: str | None = None) -> None:
    with Session(engine) as s, s.begin():
        run = s.get(RetrainRun, run_id)
        if run is not None and run.status in ("queued", "running"):
            run.status, run.detail, run.version = status, {"error": reason}, version
            record(s, run.model, version or "-", f"retrain_{status}", detail=json.dumps({"error": reason}))
