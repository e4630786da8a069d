"""edge-hub: serve | gateways | tokens | publish | models | deploy | rollback | config | deployments |
history."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agent import __version__
from agent.errors import AgentError

DEFAULT_DB = "sqlite:///hub.db"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-hub", description="central hub for edge gateways")
    p.add_argument("--version", action="version", version=f"edge-hub {__version__}")
    p.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL (sqlite:///FILE or postgresql+psycopg://...)")
    p.add_argument("--data", type=Path, default=Path("hub-data"),
                   help="directory for bundle archives and trusted-keys/")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    serve.add_argument("--trusted-key", type=Path, action="append", default=[],
                       help="public key trusted to sign bundles (besides DATA/trusted-keys/*.pub)")

    gw = sub.add_parser("gateways", help="manage gateways and groups")
    gsub = gw.add_subparsers(dest="gw_command", required=True, metavar="ACTION")
    add = gsub.add_parser("add", help="register a gateway and print its token (once)")
    add.add_argument("gateway_id")
    add.add_argument("--group")
    gls = gsub.add_parser("list", help="the fleet: groups, last contact, versions, backlog")
    gls.add_argument("--json", action="store_true")
    grp = gsub.add_parser("group", help="move a gateway to a group (or out of any with --none)")
    grp.add_argument("gateway_id")
    grp.add_argument("group", nargs="?")
    grp.add_argument("--none", action="store_true")
    tok = gsub.add_parser("token", help="revoke the gateway's tokens and print a new one")
    tok.add_argument("gateway_id")
    rm = gsub.add_parser("remove", help="retire a gateway: tokens revoked, telemetry kept")
    rm.add_argument("gateway_id")

    sub.add_parser("tokens", help="create an admin token and print it (once)")
    pub = sub.add_parser("publish", help="verify and register a model bundle")
    pub.add_argument("bundle", type=Path)
    pub.add_argument("--trusted-key", type=Path, action="append", default=[])
    mls = sub.add_parser("models", help="list published versions")
    mls.add_argument("action", choices=["list"])
    mls.add_argument("model", nargs="?")
    mls.add_argument("--json", action="store_true")
    dep = sub.add_parser("deploy", help="deploy a published version")
    dep.add_argument("model")
    dep.add_argument("model_version")
    dep.add_argument("--to", required=True, help="a gateway id, or a group (NAME or group:NAME)")
    dep.add_argument("--strategy", default="immediate", choices=["immediate", "canary", "shadow"])
    dep.add_argument("--canary-size", type=int, default=1, help="gateways that get a canary first")
    dep.add_argument("--watch", type=float, default=600.0,
                     help="seconds a canary must run clean / a shadow may wait for labels")
    dep.add_argument("--min-labels", type=int, default=50,
                     help="labelled outcomes a shadow comparison needs before the hub decides")
    dep.add_argument("--margin", type=float, default=0.0,
                     help="how much worse (error rate; relative for MAE) a shadow may be and still win")
    rb = sub.add_parser("rollback", help="stop rollouts and deploy an earlier version everywhere")
    rb.add_argument("model")
    rb.add_argument("--to", required=True, dest="to_version", help="the version to go back to")
    rb.add_argument("--target", help="only this gateway or group:NAME")
    cfg = sub.add_parser("config", help="config overlays for gateways and groups")
    csub = cfg.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    cset = csub.add_parser("set", help="hold a YAML overlay for a gateway or group:NAME")
    cset.add_argument("target")
    cset.add_argument("file", type=Path, help="YAML file of agent config sections")
    cset.add_argument("--by", default="operator", help="who (for the record)")
    cset.add_argument("--comment")
    cclear = csub.add_parser("clear", help="remove the overlay of a gateway or group:NAME")
    cclear.add_argument("target")
    cclear.add_argument("--by", default="operator")
    csub.add_parser("show", help="the overlays held and what each gateway reported")
    pol = sub.add_parser("policy", help="how the hub keeps a model working: triggers, trainer, rollout")
    pol.add_argument("action", choices=["set", "show"])
    pol.add_argument("model")
    pol.add_argument("settings", nargs="*", metavar="KEY=VALUE",
                     help="e.g. accuracy_below=0.85 sustain_s=300 strategy=canary require_approval=true "
                          "trainer=rf trainer='{\"command\": [\"/opt/train.sh\"]}'")
    rt = sub.add_parser("retrain", help="retrain now, or show why retrains ran or did not")
    rt.add_argument("action", choices=["now", "status"])
    rt.add_argument("model")
    rt.add_argument("--reason", default="requested by an operator")
    ap = sub.add_parser("approve", help="release a retrained version held for approval")
    ap.add_argument("model")
    ap.add_argument("model_version")
    ap.add_argument("--by", required=True)
    ap.add_argument("--reason", required=True)
    rp = sub.add_parser("reproduce", help="retrain a version from its stored dataset and compare")
    rp.add_argument("model")
    rp.add_argument("model_version")
    cd = sub.add_parser("card", help="a version's model card (Markdown, or HTML with --html)")
    cd.add_argument("model")
    cd.add_argument("model_version")
    cd.add_argument("--html", action="store_true")
    au = sub.add_parser("audit", help="verify or export the hub's hash-chained audit trail")
    au.add_argument("action", choices=["verify", "export"])
    au.add_argument("--since", default=None, help="ISO date/time or epoch seconds")
    dls = sub.add_parser("deployments", help="list deployments and their rollout state")
    dls.add_argument("--json", action="store_true")
    hist = sub.add_parser("history", help="version history: published, deployed, activated, ...")
    hist.add_argument("model", nargs="?")
    hist.add_argument("--json", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        print(f"error: no gateway {exc.args[0]} (edge-hub gateways list)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from hub.db import open_db

    try:
        engine = open_db(args.db)
    except Exception as exc:  # SQLAlchemy's errors, a driver's, a malformed URL: say which
        print(f"error: --db {args.db}: cannot open the database ({str(exc).splitlines()[0]})",
              file=sys.stderr)
        return 2
    try:
        return _run_command(engine, args)
    finally:
        engine.dispose()  # a command's connections end with it


def _run_command(engine: Any, args: argparse.Namespace) -> int:
    if args.command == "serve":
        import uvicorn

        from hub.app import create_app

        uvicorn.run(create_app(engine, args.data, args.trusted_key), host=args.host, port=args.port,
                    ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                    ssl_keyfile=str(args.tls_key) if args.tls_key else None, log_level="info")
        return 0
    if args.command == "gateways":
        return _gateways(engine, args)
    if args.command == "tokens":
        from hub.db import add_admin_token

        print(add_admin_token(engine))
        return 0
    if args.command == "publish":
        from hub.registry import publish, trusted_keys

        bundle = publish(engine, args.data, args.bundle, trusted_keys(args.data, args.trusted_key))
        print(f"published {bundle.label} ({bundle.sha256[:16]})")
        return 0
    if args.command == "models":
        from hub.registry import list_versions

        versions = list_versions(engine, args.model)
        if args.json:
            print(json.dumps(versions, indent=1))
        for v in [] if args.json else versions:
            lineage = v["lineage"]
            print(f"{v['name']} {v['version']}  {v['sha256'][:12]}  {_when(v['created'])}  "
                  f"parent {lineage.get('parent_version') or '-'}  {lineage.get('reason') or ''}")
        return 0
    if args.command == "deploy":
        from hub.rollouts import RolloutPolicy, deploy

        policy = RolloutPolicy(args.canary_size, args.watch, args.min_labels, args.margin)
        dep_id = deploy(engine, args.model, args.model_version, args.to, args.strategy, policy)
        from sqlalchemy.orm import Session

        from hub.db import Deployment

        with Session(engine) as s:
            dep = s.get(Deployment, dep_id)
            target = dep.target if dep else args.to
        print(f"deployment {dep_id}: {args.model} {args.model_version} to {target} ({args.strategy})")
        return 0
    if args.command == "rollback":
        from hub.rollouts import rollback

        targets = rollback(engine, args.model, args.to_version, args.target)
        print(f"{args.model} rolled back to {args.to_version} on {', '.join(targets)}")
        return 0
    if args.command == "deployments":
        return _deployments(engine, args.json)
    if args.command == "config":
        return _config(engine, args)
    if args.command == "card":
        from hub.modelcard import card_data, card_html, card_markdown

        data = card_data(engine, args.model, args.model_version)
        print(card_html(data) if args.html else card_markdown(data), end="")
        return 0
    if args.command in ("policy", "retrain", "approve", "reproduce", "audit"):
        return _lifecycle(engine, args)
    return _history(engine, args.model, args.json)


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def _gateways(engine: Any, args: argparse.Namespace) -> int:
    from hub.db import add_gateway, list_gateways, remove_gateway, rotate_token, set_group

    if args.gw_command == "add":
        print(add_gateway(engine, args.gateway_id, args.group))
    elif args.gw_command == "token":
        print(rotate_token(engine, args.gateway_id))
    elif args.gw_command == "remove":
        remove_gateway(engine, args.gateway_id)
        print(f"gateway {args.gateway_id} retired: its tokens are revoked")
    elif args.gw_command == "group":
        if not args.none and not args.group:
            print("error: give a GROUP or --none", file=sys.stderr)
            return 2
        set_group(engine, args.gateway_id, None if args.none else args.group)
        print(f"gateway {args.gateway_id} in group {args.group if not args.none else '(none)'}")
    else:
        rows = list_gateways(engine)
        if args.json:
            print(json.dumps(rows, indent=1, default=str))
            return 0
        print(f"{'GATEWAY':<20} {'GROUP':<14} {'LAST SEEN':<20} {'ACTIVE':<24} {'SHADOW':<18} BACKLOG")
        for g in rows:
            st = g["status"] or {}
            active = st.get("active") or {}
            shadow = st.get("shadow") or {}
            name = f"{g['id']}{' (retired)' if g['retired'] else ''}"
            print(f"{name:<20} {g['group'] or '-':<14} {_when(g['last_seen']):<20} "
                  f"{(active.get('name', '-') + ' ' + active.get('version', '')).strip():<24} "
                  f"{shadow.get('version', '-'):<18} {st.get('outbox_depth', '-')}")
    return 0


def _deployments(engine: Any, as_json: bool) -> int:
    from sqlalchemy import desc, select
    from sqlalchemy.orm import Session

    from hub.db import Deployment

    with Session(engine) as s:
        rows: list[dict[str, Any]] = [{"id": d.id, "model": d.model, "version": d.version, "target": d.target,
                 "strategy": d.strategy, "status": d.status, "canary": d.canary,
                 "created": d.created, "reason": d.reason}
                for d in s.scalars(select(Deployment).order_by(desc(Deployment.id)))]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        print(f"{r['id']:>4} {_when(r['created'])} {r['model']} {r['version']} -> {r['target']} "
              f"{r['strategy']}: {r['status']}{'  (' + r['reason'] + ')' if r['reason'] else ''}")
    return 0


def _history(engine: Any, model: str | None, as_json: bool) -> int:
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from hub.db import HistoryEntry

    with Session(engine) as s:
        q = select(HistoryEntry).order_by(HistoryEntry.id)
        if model:
            q = q.where(HistoryEntry.model == model)
        rows: list[dict[str, Any]] = [{"at": h.at, "model": h.model, "version": h.version, "event": h.event,
                 "gateway_id": h.gateway_id, "detail": h.detail} for h in s.scalars(q)]
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        where = f" on {r['gateway_id']}" if r["gateway_id"] else ""
        print(f"{_when(r['at'])} {r['model']} {r['version']} {r['event']}{where}"
              f"{': ' + r['detail'] if r['detail'] else ''}")
    return 0


def _config(engine: Any, args: argparse.Namespace) -> int:
    import yaml
    from sqlalchemy.orm import Session

    from hub.db import list_gateways
    from hub.overlays import current_overlays, set_overlay

    if args.config_command == "set":
        try:
            overlay = yaml.safe_load(args.file.read_text())
        except yaml.YAMLError as exc:
            print(f"error: {args.file}: not valid YAML ({exc})", file=sys.stderr)
            return 2
        overlay_id = set_overlay(engine, args.target, overlay, args.by, args.comment)
        print(f"overlay {overlay_id} held for {args.target}; gateways take it at their next poll")
        return 0
    if args.config_command == "clear":
        set_overlay(engine, args.target, {}, args.by, "cleared")
        print(f"overlay of {args.target} cleared")
        return 0
    with Session(engine) as s:
        overlays = current_overlays(s)
    for target, o in sorted(overlays.items()):
        print(f"{target}: overlay {o['id']} by {o['author']} {_when(o['created'])}"
              f"{' (' + o['comment'] + ')' if o['comment'] else ''}\n  {json.dumps(o['overlay'])}")
    for g in list_gateways(engine):
        cfg = (g["status"] or {}).get("config") or {}
        if cfg:
            print(f"{g['id']}: {cfg.get('state')} {cfg.get('version') or ''} {cfg.get('detail') or ''}")
    return 0


def _lifecycle(engine: Any, args: argparse.Namespace) -> int:
    from hub import audit, retrain

    if args.command == "policy":
        changes: dict[str, Any] = {}
        for item in args.settings if args.action == "set" else []:
            key, sep, value = item.partition("=")
            if not sep:
                print(f"error: {item}: use KEY=VALUE", file=sys.stderr)
                return 2
            try:
                changes[key] = json.loads(value)
            except ValueError:
                changes[key] = value  # a bare word: a string
        policy = (retrain.set_policy(engine, args.model, changes) if args.action == "set"
                  else retrain.get_policy(engine, args.model))
        print(json.dumps(policy, indent=1, sort_keys=True))
        return 0
    if args.command == "retrain" and args.action == "now":
        run = retrain.run_retrain(engine, args.data, args.model, args.reason)
        print(json.dumps({"status": run.status, "version": run.version, **run.detail}, indent=1,
                         default=str))
        return 0 if run.status != "failed" else 1
    if args.command == "retrain":
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from hub.db import RetrainRun

        with Session(engine) as s:
            runs = select(RetrainRun).where(RetrainRun.model == args.model).order_by(RetrainRun.id)
            for r in s.scalars(runs):
                print(f"{_when(r.at)} {r.status:18} {r.version or '':10} {r.trigger}"
                      + (f" -> {r.detail['decision']}" if (r.detail or {}).get("decision") else ""))
        state = retrain.get_policy(engine, args.model)["state"]
        if state.get("last_reason"):  # the latest judgement, with today's figures
            print(f"now: {state['last_reason']}")
        return 0
    if args.command == "approve":
        dep = retrain.approve(engine, args.model, args.model_version, args.by, args.reason)
        print(f"{args.model} {args.model_version} approved by {args.by}; deployment {dep}")
        return 0
    if args.command == "reproduce":
        from hub.reproduce import reproduce

        result = reproduce(engine, args.data, args.model, args.model_version)
        print(json.dumps(result, indent=1))
        return 0 if result["match"] else 1
    if args.action == "verify":
        count, problem = audit.verify(engine)
        if problem:
            print(f"audit trail broken: {problem} ({count} entries before it are intact)", file=sys.stderr)
            return 2
        print(f"audit trail: {count} entries, chain intact")
        return 0
    from agent.cli.audit import parse_since

    for entry in audit.export(engine, parse_since(args.since)):
        print(json.dumps(entry, sort_keys=True))
    return 0
