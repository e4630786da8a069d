"""The edge-hub command line, declared: every command with its options, help text and default.

Options belong to the command they follow (``edge-hub serve --db URL --data DIR``); --db and
--data are also read before the command, and from EDGE_HUB_DB / EDGE_HUB_DATA. Each command
names its handler (``set_defaults(handler=...)``): main dispatches through that, nothing falls
through to a default command."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from agent import __version__
from agent.cli.helpformat import Formatter

DEFAULT_DB = "sqlite:///hub.db"
DEFAULT_DATA = "hub-data"
ENV_DB, ENV_DATA = "EDGE_HUB_DB", "EDGE_HUB_DATA"

Handler = Callable[[Any, argparse.Namespace], int]


def _common(parser: argparse.ArgumentParser, level: str) -> None:
    """--db and --data at one level of the command line (kept apart to spot conflicts)."""
    g = parser.add_argument_group("database and data")
    g.add_argument("--db", dest=f"db_{level}", default=argparse.SUPPRESS, metavar="URL",
                   help=f"SQLAlchemy URL: sqlite:///FILE or postgresql+psycopg://USER@HOST/DB "
                        f"(default: ${ENV_DB}, else {DEFAULT_DB})")
    g.add_argument("--data", dest=f"data_{level}", type=Path, default=argparse.SUPPRESS, metavar="DIR",
                   help=f"directory of bundle archives, datasets, keys/ and trusted-keys/ "
                        f"(default: ${ENV_DATA}, else {DEFAULT_DATA})")


class Commands:
    """Builds subcommands with the common options and their handler."""

    def __init__(self, sub: Any, level: str) -> None:
        self.sub, self.level = sub, level

    def add(self, name: str, help: str, handler: Handler | None = None, by: bool = False,
            **kw: Any) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = self.sub.add_parser(name, help=help, description=help,
                                                         formatter_class=Formatter, **kw)
        _common(p, self.level)
        if by:  # a change: the audit trail names who made it
            p.add_argument("--by", help="who, for the audit trail (default: the local user)")
        if handler is not None:
            p.set_defaults(handler=handler)
        return p

    def group(self, name: str, help: str) -> Commands:
        p = self.add(name, help)
        return Commands(p.add_subparsers(dest=f"{name}_action", required=True, metavar="ACTION",
                                         title="actions"), self.level + "1")


def resolve_common(args: argparse.Namespace, env: dict[str, str] | None = None) -> str | None:
    """Set args.db and args.data from the command line, the environment or the default;
    return the reason when the same option was given twice with different values."""
    env = dict(os.environ) if env is None else env
    for name, env_name, default in (("db", ENV_DB, DEFAULT_DB), ("data", ENV_DATA, DEFAULT_DATA)):
        given = [(k, v) for k, v in vars(args).items() if k.startswith(f"{name}_") and k != f"{name}_action"]
        values = {str(v) for _, v in given}
        if len(values) > 1:
            return (f"--{name} given twice with different values ({' and '.join(sorted(values))}); "
                    "give it once")
        value: Any = given[0][1] if given else env.get(env_name) or default
        setattr(args, name, Path(value) if name == "data" else str(value))
        for k, _ in given:
            delattr(args, k)
    return None


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value!r}: use 1 or more")
    return number


def build(handlers: Mapping[str, Handler]) -> argparse.ArgumentParser:
    h = handlers
    p = argparse.ArgumentParser(
        prog="edge-hub", formatter_class=Formatter,
        description="The central hub for edge gateways: model registry, signed bundles, rollouts "
                    "(immediate, canary, shadow), telemetry, retraining, audit trail, dashboard.",
        epilog="Options follow the command they belong to: edge-hub serve --db URL --data DIR.\n"
               f"--db and --data may also be set by ${ENV_DB} and ${ENV_DATA}.\n"
               "edge-hub COMMAND --help shows a command's options. Guide: docs/hub.md.")
    p.add_argument("--version", action="version", version=f"edge-hub {__version__}")
    _common(p, "0")
    c = Commands(p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands"), "1")

    serve = c.add("serve", "run the HTTP API (OpenAPI at /docs and /openapi.json)", h["serve"])
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8080, help="TCP port")
    serve.add_argument("--tls-cert", type=Path, help="TLS certificate (PEM); needs --tls-key")
    serve.add_argument("--tls-key", type=Path, help="TLS private key (PEM); needs --tls-cert")
    serve.add_argument("--trusted-key", type=Path, action="append", default=[], metavar="KEY.pub",
                       help="public key trusted to sign bundles, besides DATA/trusted-keys/*.pub "
                            "(repeatable)")
    serve.add_argument("--limits", type=Path, metavar="FILE",
                       help="YAML file of limit settings (edge-hub limits lists them and their defaults)")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                       help="uvicorn's log level")
    serve.add_argument("--workers", type=_positive, default=1, metavar="N",
                       help="API worker processes on this port (PostgreSQL only; any number of "
                            "edge-hub serve on other machines may share the database too)")
    serve.add_argument("--no-jobs", action="store_true",
                       help="PostgreSQL: do not work the job queue in this process (leave it to "
                            "edge-hub worker processes)")
    serve.add_argument("--queues", nargs="+", metavar="QUEUE",
                       help="PostgreSQL: work only these queues in this process (as edge-hub worker)")

    wk = c.add("worker", "work the hub's job queue (PostgreSQL): triggers, retrains, rollouts, "
                         "audit sealing, retention; run as many as you like, on any machine",
               h["worker"])
    wk.add_argument("--queues", nargs="+", metavar="QUEUE",
                    help="only these queues (triggers, retrain, rollouts, audit, retention; "
                         "default: all)")
    wk.add_argument("--concurrency", type=_positive, default=2, metavar="N",
                    help="jobs run at the same time by this worker")
    wk.add_argument("--metrics-port", type=int, metavar="PORT",
                    help="serve this worker's job metrics for Prometheus on 127.0.0.1:PORT/metrics")
    wk.add_argument("--metrics-host", default="127.0.0.1", metavar="ADDR",
                    help="address of --metrics-port")

    ret = c.group("retention", "how many days of telemetry, training samples and audit entries "
                               "the hub keeps")
    rset = ret.add("set", "set the days kept per kind and print the policy", h["retention set"], by=True)
    rset.add_argument("settings", nargs="+", metavar="KIND=DAYS",
                      help="telemetry=30 samples=365 audit=730 (whole days, at least 1)")
    ret.add("show", "the days kept per kind and what the data covers", h["retention show"])
    ret.add("run", "apply the policy now: drop old telemetry partitions, delete old samples and "
                   "audit entries", h["retention run"], by=True)

    lim = c.add("limits", "print the limit settings in force (defaults, or those of --limits FILE)",
                h["limits"])
    lim.add_argument("--limits", type=Path, metavar="FILE", help="YAML file of limit settings to check")
    lim.add_argument("--json", action="store_true", help="JSON with each setting's description")

    fl = c.add("fleet", "the fleet, one line per (gateway, model) (as gateways list)", h["fleet"])
    fl.add_argument("--json", action="store_true", help="JSON instead of a table")

    gw = c.group("gateways", "register gateways, groups, tokens, retirement")
    add = gw.add("add", "register a gateway and print its token (shown once)", h["gateways add"], by=True)
    add.add_argument("gateway_id", help="1-128 letters, digits, '.', '_', '-' (docs/hub.md)")
    add.add_argument("--group", help="its group (the same pattern)")
    gls = gw.add("list", "the fleet, one line per (gateway, model): group, last contact, version, "
                         "shadow, health, backlog, audit chain", h["gateways list"])
    gls.add_argument("--json", action="store_true", help="JSON instead of a table")
    grp = gw.add("group", "move a gateway to a group, or out of any with --none", h["gateways group"],
                 by=True)
    grp.add_argument("gateway_id", help="the gateway's id")
    grp.add_argument("group", nargs="?", help="the group (leave out with --none)")
    grp.add_argument("--none", action="store_true", help="take the gateway out of its group")
    tok = gw.add("token", "revoke the gateway's tokens and print a new one", h["gateways token"], by=True)
    tok.add_argument("gateway_id", help="the gateway's id")
    rm = gw.add("remove", "retire a gateway: tokens revoked, telemetry kept", h["gateways remove"], by=True)
    rm.add_argument("gateway_id", help="the gateway's id")

    tk = c.group("tokens", "named admin tokens")
    tc = tk.add("create", "make an admin token for NAME and print it (shown once)", h["tokens create"],
                by=True)
    tc.add_argument("--name", required=True, help="its holder, shown in the audit trail (1-64 letters, "
                                                  "digits, '.', '_', '@', '-')")
    tl = tk.add("list", "admin tokens by name: made, revoked (never the tokens)", h["tokens list"])
    tl.add_argument("--json", action="store_true", help="JSON instead of a table")
    tr = tk.add("revoke", "revoke the admin token of NAME (the running hub refuses it within "
                          "its token cache time)", h["tokens revoke"], by=True)
    tr.add_argument("name", help="the admin token's name")

    pub = c.add("publish", "check and register a model bundle (folder, .tar or .tar.gz)", h["publish"])
    pub.add_argument("bundle", type=Path, help="bundle folder, .tar or .tar.gz")
    pub.add_argument("--trusted-key", type=Path, action="append", default=[], metavar="KEY.pub",
                     help="public key trusted to sign it, besides DATA/trusted-keys/*.pub (repeatable)")
    pub.add_argument("--limits", type=Path, metavar="FILE", help="YAML file of limit settings")
    pub.add_argument("--by", help="who publishes, for the audit trail (default: the local user)")

    mg = c.group("models", "published model versions")
    mls = mg.add("list", "versions with sha256, parent and reason", h["models list"])
    mls.add_argument("model", nargs="?", help="only this model")
    mls.add_argument("--json", action="store_true", help="JSON with the manifests")

    dep = c.add("deploy", "deploy a published version to a gateway or group", h["deploy"])
    dep.add_argument("model", help="model name")
    dep.add_argument("model_version", metavar="VERSION", help="model version")
    dep.add_argument("--to", required=True, help="a gateway id, or a group (NAME or group:NAME)")
    dep.add_argument("--strategy", default="immediate", choices=["immediate", "canary", "shadow"],
                     help="how it rolls out")
    dep.add_argument("--canary-size", type=int, help="canary only: gateways that get it first (default: 1)")
    dep.add_argument("--watch", type=float, help="canary and shadow: seconds a canary must run clean / a "
                                                 "shadow may wait for labels (default: 600)")
    dep.add_argument("--min-labels", type=int, help="shadow only: labelled outcomes needed before the hub "
                                                    "decides (default: 50)")
    dep.add_argument("--margin", type=float, help="shadow only: how much worse (error rate; relative for "
                                                  "MAE) it may be and still win (default: 0)")
    dep.add_argument("--by", help="who deploys, for the audit trail (default: the local user)")

    rb = c.add("rollback", "stop rollouts of MODEL and deploy an earlier version wherever it runs",
               h["rollback"])
    rb.add_argument("model", help="model name")
    rb.add_argument("--to", required=True, dest="to_version", metavar="VERSION",
                    help="the version to go back to")
    rb.add_argument("--target", help="only this gateway or group:NAME")
    rb.add_argument("--by", help="who rolls back, for the audit trail (default: the local user)")

    cfg = c.group("config", "config overlays for gateways and groups")
    cset = cfg.add("set", "hold a YAML overlay for a gateway or group:NAME", h["config set"])
    cset.add_argument("target", help="a gateway id or group:NAME")
    cset.add_argument("file", type=Path, help="YAML file of agent config sections")
    cset.add_argument("--by", help="who, for the record (default: the local user)")
    cset.add_argument("--comment", help="why, for the record")
    cclear = cfg.add("clear", "remove the overlay of a gateway or group:NAME", h["config clear"])
    cclear.add_argument("target", help="a gateway id or group:NAME")
    cclear.add_argument("--by", help="who, for the record (default: the local user)")
    cfg.add("show", "the overlays held and what each gateway reported", h["config show"])

    pol = c.group("policy", "how the hub keeps a model working: triggers, trainer, rollout")
    pset = pol.add("set", "change settings of a model's policy and print it", h["policy set"])
    pset.add_argument("model", help="model name")
    pset.add_argument("settings", nargs="+", metavar="KEY=VALUE",
                      help="e.g. accuracy_below=0.85 sustain_s=300 strategy=canary require_approval=true "
                           "trainer=rf trainer='{\"command\": [\"/opt/train.sh\"]}'")
    pset.add_argument("--by", help="who, for the audit trail (default: the local user)")
    pshow = pol.add("show", "print a model's policy and trigger state", h["policy show"])
    pshow.add_argument("model", help="model name")

    rt = c.group("retrain", "retrain now, or show why retrains ran or did not")
    rnow = rt.add("now", "retrain MODEL at once (snapshot, train, evaluate, publish if better)",
                  h["retrain now"])
    rnow.add_argument("model", help="model name")
    rnow.add_argument("--reason", default="requested by an operator", help="recorded as the trigger")
    rnow.add_argument("--by", help="who, for the audit trail (default: the local user)")
    rst = rt.add("status", "every retrain decision for MODEL, with its reason", h["retrain status"])
    rst.add_argument("model", help="model name")

    ap = c.add("approve", "release a retrained version held for approval", h["approve"])
    ap.add_argument("model", help="model name")
    ap.add_argument("model_version", metavar="VERSION", help="model version")
    ap.add_argument("--by", required=True, help="who approves (recorded)")
    ap.add_argument("--reason", required=True, help="why (recorded)")

    rp = c.add("reproduce", "retrain a version from its stored dataset and compare predictions",
               h["reproduce"])
    rp.add_argument("model", help="model name")
    rp.add_argument("model_version", metavar="VERSION", help="model version")

    cd = c.add("card", "a version's model card (Markdown, or HTML with --html)", h["card"])
    cd.add_argument("model", help="model name")
    cd.add_argument("model_version", metavar="VERSION", help="model version")
    cd.add_argument("--html", action="store_true", help="a standalone HTML page instead of Markdown")

    au = c.group("audit", "the hub's hash-chained audit trail")
    au.add("verify", "check the chain; exit 2 naming the first edited, removed or reordered entry",
           h["audit verify"])
    aex = au.add("export", "the entries as JSON lines", h["audit export"])
    aex.add_argument("--since", help="ISO date/time or epoch seconds")

    dls = c.add("deployments", "deployments and their rollout state", h["deployments"])
    dls.add_argument("--json", action="store_true", help="JSON instead of lines")
    hist = c.add("history", "version history: published, deployed, activated, promoted, rejected, ...",
                 h["history"])
    hist.add_argument("model", nargs="?", help="only this model")
    hist.add_argument("--json", action="store_true", help="JSON instead of lines")
    return p
