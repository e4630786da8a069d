"""edge-agent models import | list | rollback: the local operator's hands on model versions,
for air-gapped plants (a bundle from a USB stick) and for going back without the hub.

The command verifies and installs into the state directory, then leaves a request that the
running agent takes within seconds (or at its next start): activation goes through the same
path as a version from the hub (self-test, atomic switch, watch against the previous one)."""

from __future__ import annotations

import argparse
import getpass
import json
import time
from pathlib import Path

from agent.config import AgentConfig, ModelEntry, load_config
from agent.errors import AgentError, BundleError, ConfigError
from agent.models.layout import manifest_name
from agent.models.store import ModelStore
from agent.service.graph import unit_dir_names, upgrade_state


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_config: Path) -> None:
    models = sub.add_parser("models", help="import, list and roll back model versions locally")
    models.set_defaults(handler=run)
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION",
                                 title="actions")
    imp = msub.add_parser("import", help="verify a bundle (.tar or folder) and activate it")
    imp.add_argument("bundle", type=Path, metavar="PATH", help="bundle folder or .tar")
    imp.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                     help="the agent's YAML config")
    imp.add_argument("--reason", default="imported offline", help="why, for the audit log")
    imp.add_argument("--no-activate", action="store_true", help="install only (for a later rollback)")
    model_help = ("which model (a name of models:); default: the only one, or for import the "
                  "one the bundle's manifest names")
    imp.add_argument("--model", default=None, metavar="NAME", help=model_help)
    ls = msub.add_parser("list", help="versions on this gateway: active, previous, rejected")
    ls.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                    help="the agent's YAML config")
    ls.add_argument("--json", action="store_true", help="versions and history as JSON")
    rb = msub.add_parser("rollback", help="go back to the previous version, or to VERSION")
    rb.add_argument("target_version", nargs="?", metavar="VERSION",
                    help="version to go back to (default: the previous one)")
    rb.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                    help="the agent's YAML config")
    rb.add_argument("--reason", default="rolled back by the operator", help="why, for the audit log")
    ls.add_argument("--model", default=None, metavar="NAME", help=model_help)
    rb.add_argument("--model", default=None, metavar="NAME", help=model_help)


def model_store(cfg: AgentConfig, wanted: str | None, bundle: Path | None = None) -> tuple[
        ModelEntry, ModelStore]:
    """The store of the model the operator means (the state directory upgraded first, as the
    agent does at its start, so both read the same folders)."""
    names = unit_dir_names(cfg)
    upgrade_state(cfg, names)
    slots = list(zip(cfg.models, names, strict=True))
    if wanted is None and len(slots) > 1 and bundle is not None:
        wanted = manifest_name(bundle, cfg.state_dir / "staging")
    if wanted is None:
        if len(slots) > 1:
            raise ConfigError([f"--model: this gateway runs {len(slots)} models "
                               f"({', '.join(names)}); say which"])
        entry, name = slots[0]
        if entry.shorthand and bundle is not None and not (cfg.state_dir / "models" / name).exists():
            # a first import names the model's folder
            name = manifest_name(bundle, cfg.state_dir / "staging") or name
    else:
        found = next(((e, n) for e, n in slots if wanted in (e.name, n)), None)
        if found is None:
            raise ConfigError([f"--model: no model named {wanted!r} here; the config's models "
                               f"are {', '.join(names)}"])
        entry, name = found
    return entry, ModelStore(cfg.state_dir, entry.keep_versions, cfg.limits, name=name)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    entry, store = model_store(cfg, args.model, args.bundle if args.models_command == "import"
                               else None)
    who = _who()
    if args.models_command == "import":
        named = manifest_name(args.bundle, cfg.state_dir / "staging")
        if entry.name is not None and named is not None and named != entry.name:
            raise BundleError(f"{args.bundle}: the bundle is named '{named}' in its manifest, "
                              f"not '{entry.name}' (use --model {named})")
        # loaded and self-tested before it is installed: garbage is refused here, with the reason
        bundle = store.install(args.bundle, list(entry.trusted_keys), entry.allow_unsigned,
                               check_model=True)
        if entry.name is not None and bundle.manifest.name != entry.name:
            raise BundleError(f"{args.bundle}: the bundle is named '{bundle.manifest.name}' in its "
                              f"manifest, not '{entry.name}' (use --model {bundle.manifest.name})")
        print(f"verified {bundle.label} ({bundle.sha256[:16]}), signed by {bundle.signed_by or 'nobody'}, "
              "self-test passed")
        if not args.no_activate:
            store.request(bundle.sha256, who, args.reason)
            print("handed to the agent: it self-tests and activates it within seconds "
                  "(or at its next start); see 'edge-agent models list'")
        return 0
    if args.models_command == "list":
        versions = store.versions()
        if args.json:
            print(json.dumps({"versions": versions, "history": store.state.history[-50:]}, indent=1))
            return 0
        if not versions:
            print("no model versions installed")
        for v in versions:
            flag = v["role"] or ("rejected" if v["rejected"] else "")
            print(f"{v['name']} {v['version']:<12} {v['sha256'][:12]}  "
                  f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(v['installed']))}  {flag}"
                  f"{'  (' + v['rejected'] + ')' if v['rejected'] else ''}")
        return 0
    if args.target_version:
        sha = store.find(args.target_version)
        if sha is None:
            raise BundleError(f"version {args.target_version} is not installed here "
                              "(edge-agent models list; import it first)")
    else:
        sha = store.state.previous
        if sha is None or not store.has(sha):
            raise AgentError("no previous version on this gateway; name one: "
                             "edge-agent models rollback VERSION")
    if sha == store.state.active:
        print("that version is already active")
        return 0
    store.request(sha, who, args.reason, action="rollback")
    print(f"rollback to {sha[:12]} handed to the agent")
    return 0


def _who() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"
