"""edge-hub config ... | policy ... | retrain ... | approve | reproduce | audit ...: keeping the
fleet's models working, and the record of it."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from hub.cli.fleet import when


def config_set(ctx: Any, args: argparse.Namespace) -> int:
    import yaml

    from hub.ids import check_target
    from hub.overlays import set_overlay

    check_target(args.target)
    try:
        overlay = yaml.safe_load(args.file.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"error: {args.file}: not valid YAML ({why})", file=sys.stderr)
        return 2
    _check_json_limits(overlay, args.file)
    overlay_id = set_overlay(ctx.engine, args.target, overlay, ctx.actor, args.comment)
    print(f"overlay {overlay_id} held for {args.target}; gateways take it at their next poll")
    return 0


def _check_json_limits(value: Any, where: Any) -> None:
    from agent.errors import AgentError
    from hub.limits import HubLimits, LimitError, check_value

    try:
        check_value(value, HubLimits(), str(where))
    except LimitError as exc:
        raise AgentError(str(exc)) from None


def config_clear(ctx: Any, args: argparse.Namespace) -> int:
    from hub.ids import check_target
    from hub.overlays import set_overlay

    check_target(args.target)
    set_overlay(ctx.engine, args.target, {}, ctx.actor, "cleared")
    print(f"overlay of {args.target} cleared")
    return 0


def config_show(ctx: Any, args: argparse.Namespace) -> int:
    from sqlalchemy.orm import Session

    from hub.overlays import current_overlays
    from hub.storage import list_gateways

    with Session(ctx.engine) as s:
        overlays = current_overlays(s)
    for target, o in sorted(overlays.items()):
        print(f"{target}: overlay {o['id']} by {o['author']} {when(o['created'])}"
              f"{' (' + o['comment'] + ')' if o['comment'] else ''}\n  {json.dumps(o['overlay'])}")
    for g in list_gateways(ctx.engine):
        cfg = (g["status"] or {}).get("config") or {}
        if cfg:
            print(f"{g['id']}: {cfg.get('state')} {cfg.get('version') or ''} {cfg.get('detail') or ''}")
    return 0


def policy_set(ctx: Any, args: argparse.Namespace) -> int:
    from hub import retrain

    changes: dict[str, Any] = {}
    for item in args.settings:
        key, sep, value = item.partition("=")
        if not sep:
            print(f"error: {item}: use KEY=VALUE", file=sys.stderr)
            return 2
        try:
            changes[key] = json.loads(value)
        except (ValueError, RecursionError):
            changes[key] = value  # a bare word: a string
    _check_json_limits(changes, "KEY=VALUE")
    print(json.dumps(retrain.set_policy(ctx.engine, args.model, changes), indent=1, sort_keys=True))
    return 0


def policy_show(ctx: Any, args: argparse.Namespace) -> int:
    from hub import retrain

    print(json.dumps(retrain.get_policy(ctx.engine, args.model), indent=1, sort_keys=True))
    return 0


def retrain_now(ctx: Any, args: argparse.Namespace) -> int:
    from hub import retrain

    run = retrain.run_retrain(ctx.engine, args.data, args.model, args.reason)
    print(json.dumps({"status": run.status, "version": run.version, **run.detail}, indent=1, default=str))
    return 0 if run.status != "failed" else 1


def retrain_status(ctx: Any, args: argparse.Namespace) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hub import retrain
    from hub.storage import RetrainRun

    with Session(ctx.engine) as s:
        runs = select(RetrainRun).where(RetrainRun.model == args.model).order_by(RetrainRun.id)
        for r in s.scalars(runs):
            print(f"{when(r.at)} {r.status:18} {r.version or '':10} {r.trigger}"
                  + (f" -> {r.detail['decision']}" if (r.detail or {}).get("decision") else ""))
    state = retrain.get_policy(ctx.engine, args.model)["state"]
    if state.get("last_reason"):  # the latest judgement, with today's figures
        print(f"now: {state['last_reason']}")
    return 0


def approve(ctx: Any, args: argparse.Namespace) -> int:
    from hub import retrain

    dep = retrain.approve(ctx.engine, args.model, args.model_version, args.by, args.reason)
    print(f"{args.model} {args.model_version} approved by {args.by}; deployment {dep}")
    return 0


def reproduce(ctx: Any, args: argparse.Namespace) -> int:
    from hub.reproduce import reproduce

    result = reproduce(ctx.engine, args.data, args.model, args.model_version)
    print(json.dumps(result, indent=1))
    return 0 if result["match"] else 1


def audit_verify(ctx: Any, args: argparse.Namespace) -> int:
    from hub import audit

    count, problem = audit.verify(ctx.engine)
    if problem:
        print(f"audit trail broken: {problem} ({count} entries before it are intact)", file=sys.stderr)
        return 2
    print(f"audit trail: {count} entries, chain intact")
    return 0


def audit_export(ctx: Any, args: argparse.Namespace) -> int:
    from agent.cli.audit import parse_since
    from hub import audit

    for entry in audit.export(ctx.engine, parse_since(args.since)):
        print(json.dumps(entry, sort_keys=True))
    return 0


HANDLERS = {"config set": config_set, "config clear": config_clear, "config show": config_show,
            "policy set": policy_set, "policy show": policy_show, "retrain now": retrain_now,
            "retrain status": retrain_status, "approve": approve, "reproduce": reproduce,
            "audit verify": audit_verify, "audit export": audit_export}
