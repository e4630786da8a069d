"""edge-agent audit verify | export: the gateway's hash-chained record of what happened."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from agent.config import load_config
from agent.errors import AgentError
from agent.store.audit import AuditLog


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_config: Path) -> None:
    audit = sub.add_parser("audit", help="verify or export the hash-chained audit log")
    audit.set_defaults(handler=run)
    asub = audit.add_subparsers(dest="audit_command", required=True, metavar="ACTION",
                                title="actions")
    verify = asub.add_parser("verify", help="exit 2 naming the first edited, removed or reordered entry")
    verify.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                        help="the agent's YAML config")
    export = asub.add_parser("export", help="entries as JSON lines")
    export.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                        help="the agent's YAML config")
    export.add_argument("--since", default=None,
                        help="ISO date/time (2026-11-26T08:00) or epoch seconds")


def parse_since(text: str | None) -> float:
    if text is None:
        return 0.0
    try:
        return float(text)
    except ValueError:
        pass
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AgentError(f"--since {text}: use an ISO date/time such as 2026-11-26T08:00, "
                         "or epoch seconds") from None
    return when.timestamp()


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    log = AuditLog(cfg.state_dir / "audit.log")
    if args.audit_command == "verify":
        count, problem = log.verify()
        if problem is not None:
            print(f"{log.path}: chain broken at {problem} ({count} entries before it are intact)",
                  file=sys.stderr)
            return 2
        print(f"{log.path}: {count} entries, chain intact")
        return 0
    since = parse_since(args.since)
    for entry in log.export(since):
        print(json.dumps(entry, sort_keys=True))
    return 0
