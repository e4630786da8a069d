"""edge-hub: serve | limits | gateways | tokens | publish | models | deploy | rollback | config |
policy | retrain | approve | reproduce | card | audit | deployments | history | worker |
retention.

argparse subcommands (as edge-agent), declared in hub.cli.parser; each command's handler lives
in hub.cli.fleet, hub.cli.releases or hub.cli.lifecycle. Every failure a user can cause ends as
one line and exit 2 (bad input, conflicting options) or 1 (a failure at run time), never a
traceback. Mutating commands record the local operator (``--by``, else the login name) in the
hub's audit trail."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from agent.errors import AgentError
from hub.cli import fleet, lifecycle, ops, releases
from hub.cli.parser import DEFAULT_DB, build, resolve_common

__all__ = ["DEFAULT_DB", "main"]

HANDLERS = {**fleet.HANDLERS, **releases.HANDLERS, **lifecycle.HANDLERS, **ops.HANDLERS}


class Context:
    """What a handler gets: its arguments and the database, opened on first use."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self._engine: Any = None

    @property
    def engine(self) -> Any:
        if self._engine is None:
            from hub.storage import open_db

            try:
                self._engine = open_db(self.args.db)
            except Exception as exc:  # SQLAlchemy's errors, a driver's, a malformed URL: say which
                why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                raise AgentError(f"--db {self.args.db}: cannot open the database ({why})") from None
        return self._engine

    @property
    def actor(self) -> str:
        by = getattr(self.args, "by", None)
        if not by:
            try:
                by = getpass.getuser()
            except (OSError, KeyError):
                by = "operator"
        return f"cli:{by}"

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()  # a command's connections end with it


def main(argv: list[str] | None = None) -> int:
    parser = build(HANDLERS)
    args = parser.parse_args(argv)
    conflict = resolve_common(args) or conflicts(args)
    if conflict:
        parser.exit(2, f"{parser.prog}: error: {conflict}\n")
    ctx = Context(args)
    try:
        from hub.storage import acting_as

        with acting_as(ctx.actor):
            code: int = args.handler(ctx, args)
        return code
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LookupError as exc:
        what = exc.args[0] if exc.args else ""
        print(f"error: no gateway {what} (edge-hub gateways list)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: {exc.strerror or exc} ({exc.filename or ''})", file=sys.stderr)
        return 1
    finally:
        ctx.close()


def conflicts(args: argparse.Namespace) -> str | None:
    """Options that contradict each other or the command: refused, never silently ignored."""
    if args.command == "gateways" and args.gateways_action == "group":
        if args.none and args.group:
            return f"gateways group: give a GROUP ({args.group}) or --none, not both"
        if not args.none and not args.group:
            return "gateways group: give a GROUP or --none"
    if args.command == "serve" and bool(args.tls_cert) != bool(args.tls_key):
        return "serve: --tls-cert and --tls-key go together"
    if args.command == "serve" and args.no_jobs and args.queues:
        return "serve: --no-jobs or --queues, not both"
    if args.command == "deploy":
        only = {"canary_size": ("canary",), "watch": ("canary", "shadow"), "min_labels": ("shadow",),
                "margin": ("shadow",)}
        for option, strategies in only.items():
            if getattr(args, option) is not None and args.strategy not in strategies:
                flag = "--" + option.replace("_", "-")
                return (f"deploy: {flag} applies to --strategy {' or '.join(strategies)}, "
                        f"not {args.strategy}")
    return None
