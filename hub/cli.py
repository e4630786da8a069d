"""edge-hub: serve | gateways add | tokens admin | publish | deploy (the parts built so far)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import __version__
from agent.errors import AgentError

DEFAULT_DB = "sqlite:///hub.db"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-hub", description="central hub for edge gateways")
    p.add_argument("--version", action="version", version=f"edge-hub {__version__}")
    p.add_argument("--db", default=DEFAULT_DB, help="SQLAlchemy URL (sqlite:///FILE or postgresql+psycopg://...)")
    p.add_argument("--data", type=Path, default=Path("hub-data"), help="directory for bundle archives")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--tls-cert", type=Path)
    serve.add_argument("--tls-key", type=Path)
    gw = sub.add_parser("gateways", help="manage gateways")
    gsub = gw.add_subparsers(dest="gw_command", required=True, metavar="ACTION")
    add = gsub.add_parser("add", help="register a gateway and print its token (once)")
    add.add_argument("gateway_id")
    add.add_argument("--group")
    sub.add_parser("tokens", help="create an admin token and print it (once)")
    pub = sub.add_parser("publish", help="verify and register a model bundle")
    pub.add_argument("bundle", type=Path)
    pub.add_argument("--trusted-key", type=Path, action="append", required=True)
    dep = sub.add_parser("deploy", help="deploy a published version")
    dep.add_argument("model")
    dep.add_argument("model_version")
    dep.add_argument("--to", required=True, help="gateway id or group:NAME")
    dep.add_argument("--strategy", default="immediate", choices=["immediate", "canary", "shadow"])
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _dispatch(args)
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from hub.db import add_admin_token, add_gateway, open_db

    try:
        engine = open_db(args.db)
    except SQLAlchemyError as exc:
        print(f"error: --db {args.db}: cannot open the database ({str(exc).splitlines()[0]})",
              file=sys.stderr)
        return 2
    if args.command == "serve":
        import uvicorn

        from hub.app import create_app

        uvicorn.run(create_app(engine, args.data), host=args.host, port=args.port,
                    ssl_certfile=str(args.tls_cert) if args.tls_cert else None,
                    ssl_keyfile=str(args.tls_key) if args.tls_key else None, log_level="warning")
        return 0
    if args.command == "gateways":
        print(add_gateway(engine, args.gateway_id, args.group))
        return 0
    if args.command == "tokens":
        print(add_admin_token(engine))
        return 0
    if args.command == "publish":
        from hub.registry import publish

        bundle = publish(engine, args.data, args.bundle, args.trusted_key)
        print(f"published {bundle.label} ({bundle.sha256[:16]})")
        return 0
    from hub.registry import deploy

    deploy(engine, args.model, args.model_version, args.to, args.strategy)
    print(f"deployed {args.model} {args.model_version} to {args.to} ({args.strategy})")
    return 0
