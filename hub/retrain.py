"""Retraining when performance slips, never on a calendar alone.

Triggers, per model, from the gateways' reports of that model (``hub.field``): rolling balanced
accuracy below ``balanced_accuracy_below``, or a class recall below ``min_class_recall`` (on at
least ``min_per_class`` parts of that class), for ``sustain_s``; or a drift alarm held for
``drift_sustain_s`` with at least ``min_new_labels`` labelled samples since the last retrain. At
most one retrain per ``min_interval_s``. A retrain waits, and says why, until the data since the
trouble began holds ``min_rows`` training rows and ``min_per_class`` labelled examples of every
class in training and in the holdout. Every decision, run or not, is recorded with its reason.

A run: snapshot the labelled samples (the newest share is the holdout, never older than the
champion's own training data), train with the policy's trainer (a command, run as its own
process, given the plant's costs: a crash or garbage output fails the run and leaves the fleet
alone), build and sign the bundle with the hub's key (reference profile, thresholds and cost
matrix, lineage), then champion/challenger on the holdout (``hub.evaluation``): published only
if the challenger's expected cost per part is lower by ``margin`` with a paired test and no
class recall is below ``min_class_recall``; then held for approval or deployed by the policy's
strategy."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub import field
from hub.challenger import champion, deploy_version, hub_key, retrain, train
from hub.datasets import plan_split, trained_until
from hub.faults import slow_point
from hub.fleet.pg import exclusive
from hub.policy import DEFAULT_POLICY, get_policy, set_policy
from hub.registry import HubError
from hub.reports import model_reports
from hub.storage import ModelPolicy, RetrainRun, TrainingSample, record

__all__ = ["DEFAULT_POLICY", "approve", "evaluate_triggers", "get_policy", "hub_key", "run_retrain",
           "set_policy", "train"]

log = logging.getLogger(__name__)

_running = threading.Lock()  # one retrain at a time in this process (exclusive(): per model, per hub)


class RetrainStarter(Protocol):
    """Starts a run elsewhere (a job on the task queue: hub.fleet.queue)."""

    def busy(self, model: str) -> bool: ...
    def __call__(self, model: str, why: str) -> None: ...


def _reports(engine: Engine) -> dict[str, dict[str, dict[str, Any]]]:
    """{model: {gateway: its entry}}: each model's triggers read its own entries only."""
    with Session(engine) as s:
        return model_reports(s)


# -- triggers -------------------------------------------------------------------------------
def evaluate_triggers(engine: Engine, data_dir: Path, now: float | None = None,
                      background: bool = True, start: RetrainStarter | None = None) -> list[str]:
    """Check every model's triggers; start a run when one holds (in a thread, here, or by
    ``start``: a job). Returns what was decided."""
    now = time.time() if now is None else now
    started = []
    with Session(engine) as s:
        policies = {p.model: ({k: v for k, v in p.policy.items() if k in DEFAULT_POLICY},
                              dict(p.state or {})) for p in s.scalars(select(ModelPolicy))}
    reports = _reports(engine)
    for model, (stored, state) in policies.items():
        policy = {**DEFAULT_POLICY, **stored}
        mine = field.model_reports(reports.get(model, {}), model)
        field.remember(state, mine)
        why, fire = _judge(engine, model, policy, state, mine, now)
        if fire and start is not None and start.busy(model):
            why, fire = f"{why}; a retrain is already queued or running", False
        if fire and not _running.locked():
            slow_point("retrain_trigger_judged")
            state["last_retrain"] = now
            state["acc_since"] = state["drift_since"] = None  # train_since stays for the run
            _save_state(engine, model, state, why, "started")
            if start is not None:
                start(model, why)
            elif background:
                threading.Thread(target=run_retrain, args=(engine, data_dir, model, why),
                                 daemon=True, name=f"retrain-{model}").start()
            else:
                run_retrain(engine, data_dir, model, why)
            started.append(f"{model}: {why}")
        else:
            _save_state(engine, model, state, why, "skipped")
    return started


def _slipping(policy: dict[str, Any], mine: list[field.FieldReport]) -> str | None:
    """What says a gateway's model slips (balanced accuracy, or a class recall below the
    floor on enough parts of that class), with its figures; None when none does."""
    floor, need = float(policy["min_class_recall"]), int(policy["min_per_class"])
    for r in mine:
        figures = ", ".join(f"{c} recall {v.get('recall')} on {v.get('support')}"
                            for c, v in r.per_class.items())
        cost = f", cost {r.cost_per_part} per part" if r.cost_per_part is not None else ""
        ba = r.balanced_accuracy
        if ba is not None and ba < float(policy["balanced_accuracy_below"]):
            return (f"balanced accuracy {ba:.3f} below {policy['balanced_accuracy_below']} on "
                    f"{r.gateway} ({figures}{cost})")
        low = [c for c, v in r.per_class.items() if isinstance(v.get("recall"), (int, float))
               and int(v.get("support") or 0) >= need and float(v["recall"]) < floor]
        if low:
            return f"{low[0]} recall below the floor {floor:g} on {r.gateway} ({figures}{cost})"
    return None


def _judge(engine: Engine, model: str, policy: dict[str, Any], state: dict[str, Any],
           mine: list[field.FieldReport], now: float) -> tuple[str, bool]:
    slipping = _slipping(policy, mine)
    low = slipping is not None
    drifting = any(r.drift_alarm for r in mine)
    state["acc_since"] = (state.get("acc_since") or now) if low else None
    state["drift_since"] = (state.get("drift_since") or now) if drifting else None
    last = float(state.get("last_retrain") or 0)
    if not mine:
        return "no gateway runs this model", False
    reason = None
    if low and now - state["acc_since"] >= policy["sustain_s"]:
        reason = f"{slipping} for {now - state['acc_since']:.0f} s"
    elif drifting and now - state["drift_since"] >= policy["drift_sustain_s"]:
        with Session(engine) as s:
            fresh = s.scalar(select(func.count()).select_from(TrainingSample).where(
                TrainingSample.model == model, TrainingSample.received > last)) or 0
        if fresh < policy["min_new_labels"]:
            return (f"drift alarm held {now - state['drift_since']:.0f} s, but only {fresh} new "
                    f"labelled samples (need {policy['min_new_labels']})"), False
        reason = f"drift alarm held {now - state['drift_since']:.0f} s with {fresh} new labelled samples"
    if reason is None:
        if low:
            return f"{slipping} for {now - state['acc_since']:.0f} s (waiting)", False
        if drifting:
            return f"drift alarm for {now - state['drift_since']:.0f} s (waiting)", False
        figures = "; ".join(f"{r.gateway}: balanced accuracy {r.balanced_accuracy}" for r in mine)
        return f"healthy ({figures or 'no labelled figures reported yet'})", False
    if now - last < policy["min_interval_s"]:
        return f"{reason}; rate limited (last retrain {now - last:.0f} s ago)", False
    # train on what the line does since the trouble began (and lookback_s before it)
    since = float(state["acc_since"] if low else state["drift_since"]) - float(policy["lookback_s"])
    waiting = _waiting_for_data(engine, model, policy, since)
    if waiting is not None:
        return f"{reason}; waiting for labelled samples since then: {waiting}", False
    state["train_since"] = since
    if _running.locked():
        return f"{reason}; a retrain is already running", False
    return reason, True


def _waiting_for_data(engine: Engine, model: str, policy: dict[str, Any], since: float) -> str | None:
    """What the data since ``since`` still lacks (rows, examples of a class in training or in
    the holdout), or None when a retrain can train and be judged on it."""
    found = champion(engine, model)
    if found is None:
        return "no active deployment to challenge"
    champ, _ = found
    inputs = [i["name"] for i in champ.manifest["inputs"]]
    classes = list(champ.manifest["output"].get("classes") or [])
    after = trained_until(engine, champ.manifest.get("lineage") or {})
    split = plan_split(engine, model, inputs, classes, since, int(policy["max_rows"]),
                       float(policy["holdout_share"]), after)
    missing = []
    if split.cut < int(policy["min_rows"]):
        missing.append(f"training has {split.cut} rows of {policy['min_rows']}")
    missing += split.short_of(classes, int(policy["min_per_class"]))
    return "; ".join(missing) or None


def _save_state(engine: Engine, model: str, state: dict[str, Any], why: str, status: str) -> None:
    with Session(engine) as s, s.begin():
        row = s.get(ModelPolicy, model)
        if row is None:
            return
        kind = re.sub(r"[0-9.]+", "#", why)  # the same reason with other figures is no news
        changed = state.get("last_reason_kind") != kind or status == "started"
        state["last_reason"], state["last_reason_kind"] = why, kind
        state["last_reason_at"] = time.time()
        row.state = dict(state)
        if changed and status == "skipped":  # visible, not one row per second
            s.add(RetrainRun(model=model, at=time.time(), status="skipped", trigger=why[:1000]))


# -- a run --------------------------------------------------------------------------------------
def run_retrain(engine: Engine, data_dir: Path, model: str, trigger: str,
                seed: int | None = None, run_id: int | None = None) -> RetrainRun:
    """One run, recorded in RetrainRun ``run_id`` (queued by a trigger; a retried job runs it
    again from the start) or a new one."""
    with _running, exclusive(engine, f"retrain:{model}"):
        with Session(engine) as s, s.begin():
            run = s.get(RetrainRun, run_id) if run_id is not None else None
            if run is None:
                run = RetrainRun(model=model, at=time.time(), status="running", trigger=trigger[:1000],
                                 detail={})
                s.add(run)
            run.status = "running"
            s.flush()
            run_id = run.id
            record(s, model, "-", "retrain_started", detail=trigger)
        try:
            status, detail, version = retrain(engine, data_dir, model, trigger, seed)
        except Exception as exc:  # a failed run must never reach the fleet or stop the hub
            log.exception("retrain of %s failed", model)
            status, detail, version = "failed", {"error": f"{type(exc).__name__}: {exc}"[:900]}, None
        with Session(engine) as s, s.begin():
            done = s.get(RetrainRun, run_id)
            assert done is not None
            done.status, done.detail, done.version = status, detail, version
            summary = {k: detail[k] for k in ("decision", "error", "champion", "train_classes",
                                              "holdout_classes", "dataset_sha256") if k in detail}
            record(s, model, version or "-", f"retrain_{status}",
                   detail=json.dumps(summary, default=str)[:2000])
            s.flush()
            s.expunge(done)
        log.info("retrain of %s: %s %s", model, status, version or "")
        return done


def approve(engine: Engine, model: str, version: str, by: str, reason: str) -> int:
    """Release a candidate held for approval: deployed by the model's policy, who and why kept."""
    with Session(engine) as s:
        run = s.scalars(select(RetrainRun).where(RetrainRun.model == model, RetrainRun.version == version,
                                                 RetrainRun.status == "awaiting_approval")).first()
        if run is None:
            raise HubError(f"{model} {version} is not awaiting approval (edge-hub retrain status {model})")
        target = str(run.detail.get("target"))
        run_id = run.id
    policy = get_policy(engine, model)
    dep = deploy_version(engine, model, version, target, policy, f"approved by {by}: {reason}")
    with Session(engine) as s, s.begin():
        run = s.get(RetrainRun, run_id)
        assert run is not None
        run.status = "deployed"
        run.detail = {**run.detail, "approved_by": by, "approval_reason": reason, "deployment": dep}
        record(s, model, version, "approved", detail=reason, actor=by)
    return dep
