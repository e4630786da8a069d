"""edge-hub publish | models list | deploy | rollback | deployments | history | card: versions
and where they run."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub.cli.fleet import when
from hub.limits import HubLimits


def publish(ctx: Any, args: argparse.Namespace) -> int:
    from hub.registry import publish, trusted_keys

    bundle = publish(ctx.engine, args.data, args.bundle, trusted_keys(args.data, args.trusted_key),
                     HubLimits.load(args.limits))
    print(f"published {bundle.label} ({bundle.sha256[:16]})")
    return 0


def models_list(ctx: Any, args: argparse.Namespace) -> int:
    from hub.registry import list_versions

    versions = list_versions(ctx.engine, args.model)
    if args.json:
        print(json.dumps(versions, indent=1))
        return 0
    for v in versions:
        lineage = v["lineage"]
        print(f"{v['name']} {v['version']}  {v['sha256'][:12]}  {when(v['created'])}  "
              f"parent {lineage.get('parent_version') or '-'}  {lineage.get('reason') or ''}")
    return 0


def deploy(ctx: Any, args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from hub.ids import check_target
    from hub.rollouts import RolloutPolicy, deploy
    from hub.storage import Deployment

    check_target(args.to)
    defaults = RolloutPolicy()
    policy = RolloutPolicy(args.canary_size or defaults.canary_size,
                           defaults.watch_s if args.watch is None else args.watch,
                           defaults.min_labels if args.min_labels is None else args.min_labels,
                           defaults.margin if args.margin is None else args.margin)
    problem = _policy_problem(policy)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    dep_id = deploy(ctx.engine, args.model, args.model_version, args.to, args.strategy, policy)
    with Session(ctx.engine) as s:
        dep = s.get(Deployment, dep_id)
        target = dep.target if dep else args.to
    print(f"deployment {dep_id}: {args.model} {args.model_version} to {target} ({args.strategy})")
    return 0


def _policy_problem(policy: Any) -> str | None:
    """The same bounds as the API's DeployRequest."""
    from pydantic import ValidationError

    from hub.api.schemas import DeployRequest

    try:
        DeployRequest(model="m", version="v", to="t", canary_size=policy.canary_size,
                      watch_s=policy.watch_s, min_labels=policy.min_labels, margin=policy.margin)
    except ValidationError as exc:
        err = exc.errors()[0]
        flag = {"canary_size": "--canary-size", "watch_s": "--watch", "min_labels": "--min-labels",
                "margin": "--margin"}.get(str(err["loc"][0]), str(err["loc"][0]))
        return f"{flag}: {err['msg']}"
    return None


def rollback(ctx: Any, args: argparse.Namespace) -> int:
    from hub.rollouts import rollback

    targets = rollback(ctx.engine, args.model, args.to_version, args.target)
    print(f"{args.model} rolled back to {args.to_version} on {', '.join(targets)}")
    return 0


def deployments(ctx: Any, args: argparse.Namespace) -> int:
    from sqlalchemy import desc, select
    from sqlalchemy.orm import Session

    from hub.storage import Deployment

    with Session(ctx.engine) as s:
        rows: list[dict[str, Any]] = [
            {"id": d.id, "model": d.model, "version": d.version, "target": d.target,
             "strategy": d.strategy, "status": d.status, "canary": d.canary,
             "created": d.created, "reason": d.reason}
            for d in s.scalars(select(Deployment).order_by(desc(Deployment.id)))]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['id']:>4} {when(r['created'])} {r['model']} {r['version']} -> {r['target']} "
              f"{r['strategy']}: {r['status']}{'  (' + r['reason'] + ')' if r['reason'] else ''}")
    return 0


def history(ctx: Any, args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hub.storage import HistoryEntry

    with Session(ctx.engine) as s:
        q = select(HistoryEntry).order_by(HistoryEntry.id)
        if args.model:
            q = q.where(HistoryEntry.model == args.model)
        rows: list[dict[str, Any]] = [
            {"at": h.at, "model": h.model, "version": h.version, "event": h.event,
             "gateway_id": h.gateway_id, "detail": h.detail, "actor": h.actor} for h in s.scalars(q)]
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        where = f" on {r['gateway_id']}" if r["gateway_id"] else ""
        print(f"{when(r['at'])} {r['model']} {r['version']} {r['event']}{where}"
              f"{': ' + r['detail'] if r['detail'] else ''}  [{r['actor']}]")
    return 0


def card(ctx: Any, args: argparse.Namespace) -> int:
    from hub.modelcard import card_data, card_html, card_markdown

    data = card_data(ctx.engine, args.model, args.model_version)
    print(card_html(data) if args.html else card_markdown(data), end="")
    return 0


HANDLERS = {"publish": publish, "models list": models_list, "deploy": deploy, "rollback": rollback,
            "deployments": deployments, "history": history, "card": card}
