"""Deployments as rollouts: immediate, canary (a few gateways first, promoted to the rest of the
target after a clean watch period) and shadow (the candidate runs beside the active version on
the gateways; promoted when its labelled outcomes are not worse). The hub moves rollouts forward
from the gateways' status reports; a rejection reported by any canary stops the rollout."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.models import scoring
from hub.faults import slow_point
from hub.overlays import current_overlays, effective
from hub.policy import policy_costs, stored_policy
from hub.registry import HubError
from hub.reports import model_reports, store_report
from hub.storage import Deployment, Gateway, ModelVersion, record

__all__ = ["RolloutPolicy", "deploy", "desired_state", "evaluate", "load_snapshot", "rollback",
           "store_report"]

STRATEGIES = ("immediate", "canary", "shadow")
IN_FLIGHT = ("canary", "shadow")
SKIPPED = ("rolled_back", "rejected", "superseded")


@dataclass(frozen=True)
class RolloutPolicy:
    canary_size: int = 1
    watch_s: float = 600.0
    min_labels: int = 50
    margin: float = 0.0


def target_gateways(s: Session, target: str) -> list[str]:
    if target.startswith("group:"):
        group = target.removeprefix("group:")
        return list(s.scalars(select(Gateway.id).where(Gateway.group == group,
                                                       Gateway.retired.is_(None)).order_by(Gateway.id)))
    return [target]


def deploy(engine: Engine, model: str, version: str, target: str, strategy: str,
           policy: RolloutPolicy | None = None, reason: str | None = None,
           allow_empty: bool = False) -> int:
    policy = policy or RolloutPolicy()
    if strategy not in STRATEGIES:
        raise HubError(f"--strategy {strategy}: use one of {', '.join(STRATEGIES)}")
    with Session(engine) as s, s.begin():
        if s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                ModelVersion.version == version)).first() is None:
            raise HubError(f"{model} {version} is not published; edge-hub publish it first")
        if not target.startswith("group:") and s.get(Gateway, target) is None and s.scalars(
                select(Gateway.id).where(Gateway.group == target)).first() is not None:
            target = f"group:{target}"  # --to GROUP: a group name that is no gateway's id
        if target.startswith("group:"):
            members = target_gateways(s, target)
            if not members and not allow_empty:
                raise HubError(f"--to {target}: the group has no gateways "
                               "(edge-hub gateways add ID --group NAME)")
        else:
            gw = s.get(Gateway, target)
            if (gw is None or gw.retired is not None) and not allow_empty:
                raise HubError(f"--to {target}: no such gateway or group (edge-hub gateways add "
                               f"{target}, or edge-hub gateways list)")
            members = [target]
        # a newer decision replaces rollouts of the model still in flight for the same target
        # (another model's rollouts there go on: each model has its own)
        for old in s.scalars(select(Deployment).where(Deployment.target == target,
                                                      Deployment.model == model,
                                                      Deployment.status.in_(IN_FLIGHT))):
            old.status, old.decided, old.reason = "superseded", time.time(), "a newer deployment"
        status = {"immediate": "active", "canary": "canary", "shadow": "shadow"}[strategy]
        canary = members[:max(1, policy.canary_size)] if strategy == "canary" else []
        dep = Deployment(target=target, model=model, version=version, strategy=strategy,
                         created=time.time(), status=status, canary=canary,
                         watch_s=policy.watch_s, min_labels=policy.min_labels,
                         margin=policy.margin, reason=reason)
        s.add(dep)
        s.flush()
        detail = f"to {target} ({strategy}" + (f", canaries {', '.join(canary)}" if canary else "") + ")"
        record(s, model, version, "deployed", detail=detail + (f": {reason}" if reason else ""))
        return dep.id


def rollback(engine: Engine, model: str, version: str, target: str | None = None) -> list[str]:
    """Stop rollouts of MODEL in flight and deploy VERSION immediately wherever MODEL runs."""
    with Session(engine) as s, s.begin():
        if s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                ModelVersion.version == version)).first() is None:
            raise HubError(f"{model} {version} is not published; see edge-hub models list")
        deps = list(s.scalars(select(Deployment).where(Deployment.model == model)))
        targets = sorted({d.target for d in deps}) if target is None else [target]
        if not targets:
            raise HubError(f"{model} was never deployed; nothing to roll back")
        for d in deps:
            if d.status in IN_FLIGHT and d.target in targets:
                d.status, d.decided, d.reason = "rolled_back", time.time(), "operator rollback"
    for t in targets:
        # a group emptied since, or a retired gateway: recorded anyway, it holds if they return
        deploy(engine, model, version, t, "immediate", reason="operator rollback", allow_empty=True)
    return targets


@dataclass(frozen=True)
class _Rollout:
    id: int
    model: str
    version: str
    strategy: str
    status: str
    canary: tuple[str, ...]
    created: float
    min_labels: int
    watch_s: float


@dataclass
class FleetSnapshot:
    """Everything a desired state is made of, in memory: a poll costs no database query, however
    large the fleet. The hub reloads it after its own changes and every few seconds."""
    groups: dict[str, str | None]
    by_target: dict[str, list[_Rollout]]  # newest first
    versions: dict[tuple[str, str], dict[str, Any]]
    overlays: dict[str, dict[str, Any]] = field(default_factory=dict)
    reported: dict[str, str] = field(default_factory=dict)  # gateway -> model it last named active

    def desired(self, gateway_id: str) -> dict[str, Any]:
        """Per model that has a rollout applying to this gateway, that model's entry; the top
        level (for one-model agents) is the entry of the model the gateway last reported
        active, else of the model deployed most recently."""
        group = self.groups.get(gateway_id)
        rollouts = list(self.by_target.get(gateway_id, []))
        if group:
            rollouts += self.by_target.get(f"group:{group}", [])
        rollouts.sort(key=lambda r: r.id, reverse=True)
        by_model: dict[str, list[_Rollout]] = {}
        for d in rollouts:
            by_model.setdefault(d.model, []).append(d)
        models: dict[str, dict[str, Any]] = {}
        newest: dict[str, int] = {}
        for name, mine in by_model.items():
            entry, newest_id = self._model_entry(gateway_id, mine)
            if entry is not None:
                models[name], newest[name] = entry, newest_id
        doc: dict[str, Any] = {"gateway_id": gateway_id, "models": models, "model": None,
                               "shadow": None, "deployment": None,
                               "config": effective(self.overlays, gateway_id, group)}
        legacy = self.reported.get(gateway_id)
        if legacy not in models:
            legacy = max(newest, key=lambda n: newest[n]) if newest else None
        if legacy is not None:
            doc.update(models[legacy])
        return doc

    def _model_entry(self, gateway_id: str, rollouts: list[_Rollout]) -> tuple[dict[str, Any] | None, int]:
        """One model's newest deployment that applies to this gateway, walking back past
        rollouts that were stopped and canaries it is not part of; a shadow newer than that
        rides along. (None, 0) when nothing applies."""
        active: _Rollout | None = None
        shadow: _Rollout | None = None
        for d in rollouts:
            if d.status in SKIPPED:
                continue
            if d.status == "shadow":
                shadow = shadow or d
                continue
            if d.status == "canary" and gateway_id not in d.canary:
                continue
            active = d
            break
        if active is None and shadow is None:
            return None, 0
        entry: dict[str, Any] = {"model": None, "shadow": None, "deployment": None}
        if active is not None:
            entry["model"] = dict(self.versions[(active.model, active.version)])
            entry["deployment"] = {"id": active.id, "strategy": active.strategy,
                                   "status": active.status, "created": active.created}
        if shadow is not None:
            entry["shadow"] = {**self.versions[(shadow.model, shadow.version)], "deployment": shadow.id,
                               "min_labels": shadow.min_labels, "watch_s": shadow.watch_s}
        return entry, max(d.id for d in (active, shadow) if d is not None)


def load_snapshot(engine: Engine) -> FleetSnapshot:
    with Session(engine) as s:
        groups: dict[str, str | None] = {}
        reported: dict[str, str] = {}
        for g, grp, named in s.execute(select(Gateway.id, Gateway.group, Gateway.active_model)):
            groups[g] = grp
            if named:
                reported[g] = named
        by_target: dict[str, list[_Rollout]] = {}
        for d in s.scalars(select(Deployment).where(Deployment.status.not_in(SKIPPED))
                           .order_by(desc(Deployment.id))):
            by_target.setdefault(d.target, []).append(_Rollout(
                d.id, d.model, d.version, d.strategy, d.status, tuple(d.canary or ()), d.created,
                d.min_labels, d.watch_s))
        columns = (ModelVersion.name, ModelVersion.version, ModelVersion.sha256,
                   ModelVersion.archive_sha256, ModelVersion.size)  # not the manifests
        versions = {(name, version): {
            "name": name, "version": version, "sha256": sha, "archive_sha256": archive, "size": size,
            "url": f"/api/v1/bundles/{sha}"}
            for name, version, sha, archive, size in s.execute(select(*columns))}
        overlays = current_overlays(s)
    return FleetSnapshot(groups, by_target, versions, overlays, reported)


def desired_state(engine: Engine, gateway_id: str) -> dict[str, Any]:
    return load_snapshot(engine).desired(gateway_id)


def evaluate(engine: Engine, now: float | None = None) -> list[str]:
    """Move canary and shadow rollouts forward; return what was decided (for the log)."""
    now = time.time() if now is None else now
    decisions: list[str] = []
    with Session(engine) as s, s.begin():
        in_flight = list(s.scalars(select(Deployment).where(Deployment.status.in_(IN_FLIGHT))))
        # each rollout is judged on its own model's entries of the gateways' reports only
        entries = model_reports(s, sorted({d.model for d in in_flight})) if in_flight else {}
        for d in in_flight:
            sha = s.scalars(select(ModelVersion.sha256).where(
                ModelVersion.name == d.model, ModelVersion.version == d.version)).one()
            reports = entries.get(d.model, {})
            decision = (_judge_canary(d, sha, reports, now, s) if d.status == "canary"
                        else _judge_shadow(s, d, sha, reports, now))
            if decision is None:
                continue
            status, why = decision
            slow_point("rollout_judged")
            d.status, d.decided, d.reason = status, now, why
            event = "promoted" if status == "active" else status
            record(s, d.model, d.version, event, detail=f"{d.target}: {why}")
            decisions.append(f"{d.model} {d.version} -> {d.target}: {event} ({why})")
    return decisions


def _rejections(report: dict[str, Any], sha: str) -> str | None:
    for r in report.get("rejected") or []:
        if r.get("sha256") == sha:
            return str(r.get("reason") or "rejected by the gateway")
    return None


def _judge_canary(d: Deployment, sha: str, reports: dict[str, dict[str, Any]],
                  now: float, s: Session | None = None) -> tuple[str, str] | None:
    """Promote when every canary ran the version ``watch_s``, finished its own watch (the
    agent's cost-based comparison with the version it replaced) and rejected nothing; stop the
    rollout when a canary rejects it, or when its watch figures already show it worse by the
    hub's own rule (the model's policy costs), whatever the gateway's settings."""
    clean = 0
    for gw in d.canary or []:
        report = reports.get(gw) or {}
        why = _rejections(report, sha)
        if why is not None:
            return "rolled_back", f"canary {gw} rolled it back: {why}"
        active = report.get("active") or {}
        watch = report.get("watch") or {}
        if watch.get("sha256") == sha and s is not None:
            # judged on as many labelled outcomes as the deployment asks for, never on a handful
            verdict = _cost_verdict(s, d, watch.get("comparison") or {}, d.min_labels)
            if verdict is not None and verdict[0]:
                return "rolled_back", f"canary {gw} watch: {verdict[1]}"
        if (active.get("sha256") == sha and now - float(active.get("since") or now) >= d.watch_s
                and watch.get("sha256") != sha):
            clean += 1
    if d.canary and clean == len(d.canary):
        return "active", f"{clean} canary gateway(s) ran it {d.watch_s:g} s without regression"
    return None


def _cost_verdict(s: Session, d: Deployment, cmp: dict[str, Any],
                  min_labels: int = 1) -> tuple[bool, str] | None:
    """(worse, figures) by the hub's rule for a classifier comparison that carries paired
    counts: expected cost per part with the paired test, and no class recall credibly under the
    floor; None when there is nothing to judge."""
    classes, counts = cmp.get("classes"), cmp.get("paired_counts")
    if not isinstance(classes, list) or not isinstance(counts, list) or len(classes) < 2:
        return None
    try:
        tensor = np.asarray(counts, dtype=np.int64).reshape(len(classes), len(classes), len(classes))
    except (TypeError, ValueError):
        return None
    if int(tensor.sum()) < min_labels:
        return None
    return _paired_verdict(s, d, classes, tensor)


def _paired_verdict(s: Session, d: Deployment, classes: list[str], tensor: np.ndarray) -> tuple[bool, str]:
    policy = stored_policy(s, d.model)
    manifest = s.scalars(select(ModelVersion.manifest).where(
        ModelVersion.name == d.model, ModelVersion.version == d.version)).first() or {}
    costs = policy_costs(policy, classes, (manifest.get("output") or {}).get("positive_class"))
    worse, test = scoring.candidate_worse(tensor, costs, d.margin, float(policy["significance"]))
    cand = scoring.classifier_scores(tensor.sum(axis=1), costs)
    act = scoring.classifier_scores(tensor.sum(axis=2), costs)
    figures = (f"expected cost {cand['cost_per_part']} vs active {act['cost_per_part']} per part on "
               f"{int(tensor.sum())} labelled outcomes (margin {d.margin:g}, paired bootstrap "
               f"p={round(test.p_higher, 4) if test else '-'}; balanced accuracy "
               f"{cand['balanced_accuracy']} vs {act['balanced_accuracy']}, accuracy "
               f"{cand['accuracy']} vs {act['accuracy']})")
    if worse:
        return True, f"worse: {figures}"
    floor = scoring.recall_floor_failures(cand, float(policy["min_class_recall"]), credible=True)
    if floor:
        return True, f"worse: {'; '.join(floor)}: {figures}"
    return False, f"not worse: {figures}"


def _judge_shadow(s: Session, d: Deployment, sha: str, reports: dict[str, dict[str, Any]],
                  now: float) -> tuple[str, str] | None:
    """Once ``min_labels`` labelled outcomes are in (or its watch time is over with some), a
    classifier shadow is judged on the summed paired counts of its gateways by the same cost
    rule as champion/challenger: rejected when its expected cost is credibly higher by more than
    the margin or a class recall is credibly below the floor, else promoted. Regressors: MAE."""
    labelled = active_err = cand_err = 0.0
    kind = "classifier"
    tensor: np.ndarray | None = None
    classes: list[str] | None = None
    for gw in target_gateways(s, d.target):
        shadow = (reports.get(gw) or {}).get("shadow") or {}
        cmp = shadow.get("comparison") or {}
        if shadow.get("sha256") != sha or not cmp.get("labelled"):
            continue
        kind = str(cmp.get("kind", kind))
        labelled += float(cmp["labelled"])
        active_err += float(cmp["active_errors"])
        cand_err += float(cmp["candidate_errors"])
        counts, names = cmp.get("paired_counts"), cmp.get("classes")
        if isinstance(counts, list) and isinstance(names, list) and (classes is None or names == classes):
            try:
                t = np.asarray(counts, dtype=np.int64).reshape(len(names), len(names), len(names))
            except (TypeError, ValueError):
                continue
            tensor, classes = (t if tensor is None else tensor + t), names
    timed_out = now - d.created >= d.watch_s
    if labelled < max(1, d.min_labels) and not (timed_out and labelled > 0):
        return None  # no evidence yet: never promote blind
    if kind == "classifier" and tensor is not None and classes is not None:
        worse, why = _paired_verdict(s, d, classes, tensor)
        return ("rejected", f"shadow {why}") if worse else ("active", f"shadow {why}")
    a, c = active_err / labelled, cand_err / labelled
    what = "error rate" if kind == "classifier" else "MAE"
    figures = f"{what} {c:.4g} vs active {a:.4g} on {labelled:.0f} labelled outcomes"
    worse = c > a + d.margin if kind == "classifier" else c > a * (1 + d.margin)
    if worse:
        return "rejected", f"shadow worse: {figures}"
    return "active", f"shadow not worse: {figures}"
