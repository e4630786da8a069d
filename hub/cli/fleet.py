"""edge-hub serve | limits | gateways ... | tokens ...: the hub process and who may talk to it."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from typing import Any

from agent.errors import AgentError
from hub.limits import HubLimits


def when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "never"


def serve(ctx: Any, args: argparse.Namespace) -> int:
    import uvicorn

    from hub.app import create_app

    limits = HubLimits.load(args.limits)
    if args.queues is not None:
        from hub.fleet.queue import check_queues

        check_queues(args.queues)
    cert = str(args.tls_cert) if args.tls_cert else None
    key = str(args.tls_key) if args.tls_key else None
    if args.workers > 1:
        if ctx.engine.dialect.name != "postgresql":
            raise AgentError("serve --workers N needs PostgreSQL (--db postgresql+psycopg://...): "
                             "SQLite is the one-machine hub with one worker")
        # each worker a process of its own, made from these settings (see app_factory)
        os.environ[_SERVE_ENV] = json.dumps({
            "db": ctx.engine.url.render_as_string(hide_password=False), "data": str(args.data),
            "keys": [str(k) for k in args.trusted_key],
            "limits": str(args.limits) if args.limits else None, "jobs": not args.no_jobs,
            "queues": args.queues})
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # /metrics sums every worker
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="edge-hub-metrics-")
        ctx.close()
        uvicorn.run("hub.cli.fleet:app_factory", factory=True, workers=args.workers, host=args.host,
                    port=args.port, log_level=args.log_level, log_config=log_config(),
                    ssl_certfile=cert, ssl_keyfile=key)
        return 0
    app = create_app(ctx.engine, args.data, args.trusted_key, limits=limits, run_queue=not args.no_jobs,
                     queues=args.queues)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, log_config=log_config(),
                ssl_certfile=cert, ssl_keyfile=key)
    return 0


_SERVE_ENV = "EDGE_HUB_SERVE_SETTINGS"


def app_factory() -> Any:
    """One worker of ``edge-hub serve --workers N`` (uvicorn starts each in its own process)."""
    from pathlib import Path

    from hub.app import create_app
    from hub.storage import open_db

    settings = json.loads(os.environ[_SERVE_ENV])
    limits = HubLimits.load(Path(settings["limits"]) if settings["limits"] else None)
    return create_app(open_db(settings["db"]), Path(settings["data"]), [Path(k) for k in settings["keys"]],
                      limits=limits, run_queue=bool(settings["jobs"]), queues=settings["queues"])


def log_config() -> dict[str, Any]:
    """uvicorn's logging, with the hub's own loggers on its handler and the shared repeat filter
    (agent.aio.loglimit) on it: a repeated warning is one line and a count, never a flood."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    cfg: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    cfg.setdefault("filters", {})["repeats"] = {"()": "agent.aio.loglimit.RepeatFilter"}
    cfg["handlers"]["default"].setdefault("filters", []).append("repeats")
    cfg["loggers"]["hub"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    cfg["loggers"]["agent"] = {"handlers": ["default"], "level": "INFO", "propagate": False}
    return cfg


def limits(ctx: Any, args: argparse.Namespace) -> int:
    current = HubLimits.load(args.limits)
    if args.json:
        fields = HubLimits.model_fields
        print(json.dumps({k: {"value": v, "description": fields[k].description}
                          for k, v in current.model_dump().items()}, indent=1))
        return 0
    for key, value in current.model_dump().items():
        print(f"{key}: {value}")
    return 0


def gateways_add(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import add_gateway

    print(add_gateway(ctx.engine, args.gateway_id, args.group))
    return 0


def gateways_token(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import rotate_token

    print(rotate_token(ctx.engine, args.gateway_id))
    return 0


def gateways_remove(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import remove_gateway

    remove_gateway(ctx.engine, args.gateway_id)
    print(f"gateway {args.gateway_id} retired: its tokens are revoked")
    return 0


def gateways_group(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import set_group

    set_group(ctx.engine, args.gateway_id, None if args.none else args.group)
    print(f"gateway {args.gateway_id} in group {args.group if not args.none else '(none)'}")
    return 0


def gateways_list(ctx: Any, args: argparse.Namespace) -> int:
    """The fleet table: one line per (gateway, model); a gateway that reported no model yet has
    one line with its model columns empty."""
    from hub.storage import list_gateways

    rows = list_gateways(ctx.engine)
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    print(f"{'GATEWAY':<20} {'GROUP':<14} {'LAST SEEN':<20} {'MODEL':<18} {'VERSION':<12} "
          f"{'SHADOW':<12} {'HEALTH':<8} {'BACKLOG':<8} AUDIT")
    for g in rows:
        st = g["status"] or {}
        chain = g["audit_chain"]
        name = f"{g['id']}{' (retired)' if g['retired'] else ''}"
        audit = chain["state"] + (f": {chain['reason']}" if chain["reason"] else "")
        for m in g["models"] or [{}]:
            print(f"{name:<20} {g['group'] or '-':<14} {when(g['last_seen']):<20} "
                  f"{m.get('name') or '-':<18} {m.get('version') or '-':<12} {m.get('shadow') or '-':<12} "
                  f"{m.get('health') or '-':<8} {st.get('outbox_depth', '-')!s:<8} {audit}")
    return 0


def tokens_create(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import add_admin_token

    print(add_admin_token(ctx.engine, args.name))
    return 0


def tokens_list(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import list_tokens

    rows = list_tokens(ctx.engine)
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for t in rows:
        state = f"revoked {when(t['revoked'])}" if t["revoked"] else "active"
        print(f"{t['name']:<24} made {when(t['created'])}  {state}")
    return 0


def tokens_revoke(ctx: Any, args: argparse.Namespace) -> int:
    from hub.storage import revoke_token

    revoke_token(ctx.engine, args.name)
    print(f"admin token {args.name} revoked")
    return 0


HANDLERS = {"serve": serve, "limits": limits, "gateways add": gateways_add,
            "gateways list": gateways_list, "fleet": gateways_list, "gateways group": gateways_group,
            "gateways token": gateways_token, "gateways remove": gateways_remove,
            "tokens create": tokens_create, "tokens list": tokens_list, "tokens revoke": tokens_revoke}
