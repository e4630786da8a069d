"""Command line: edge-agent run | check-config | config-schema | status | models | alarms | bundle |
opcua | replay | sim | demo.

Every user-facing failure ends as one clear message and an exit code, never a traceback:
2 for bad input (config, CSV, bundle), 1 for a failure at run time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from agent import __version__
from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config, parse_config, preflight
from agent.errors import AgentError, BundleError, ConfigError, CsvError

EXIT_BAD_INPUT = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="edge-agent", description=__doc__.split("\n")[0])
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the agent")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)

    check = sub.add_parser("check-config", help="validate a config file; exit 2 on problems")
    check.add_argument("path", type=Path, nargs="?", default=None)
    check.add_argument("--config", type=Path, default=None, dest="config_opt")
    check.add_argument("--schema-only", action="store_true",
                       help="skip the checks that named files (keys, certificates) exist")
    check.add_argument("--credentials-dir", type=Path, default=None,
                       help="where secrets named under /run/credentials/... are kept before the "
                            "service loads them (default /etc/edge-agent/credentials)")

    sub.add_parser("config-schema", help="print the config JSON Schema")

    status = sub.add_parser("status", help="show what the agent is doing, from its state dir")
    status.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH)
    status.add_argument("--json", action="store_true")

    bundle = sub.add_parser("bundle", help="build, sign and verify model bundles")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION")
    build = bsub.add_parser("build", help="build a bundle from a model and its training CSV")
    build.add_argument("--model", type=Path, required=True)
    build.add_argument("--train-csv", type=Path, required=True)
    build.add_argument("--label", required=True, help="label column of the CSV")
    build.add_argument("--name", required=True)
    build.add_argument("--version", required=True, dest="model_version")
    build.add_argument("--out", type=Path, required=True)
    build.add_argument("--inputs", help="comma-separated feature columns, in model order")
    build.add_argument("--holdout-csv", type=Path, help="labelled data the model never saw")
    build.add_argument("--positive-class", help="class whose score is monitored (e.g. NOK)")
    build.add_argument("--sign-key", type=Path, help="Ed25519 private key to sign with")
    build.add_argument("--sample-rate", type=float, default=1.0,
                       help="samples per second on the line (sets the false-alarm budget)")
    build.add_argument("--false-alarms-per-week", type=float, default=1.0,
                       help="false alarms per week for the whole model, all detectors and streams")
    build.add_argument("--warnings-per-week", type=float, default=5.0,
                       help="warnings per week for the whole model")
    build.add_argument("--window", type=int, default=500, help="monitoring window in samples")
    build.add_argument("--categorical", help="comma-separated inputs that are category codes")
    build.add_argument("--cost-missed-nok", type=float, default=10.0,
                       help="cost of a positive-class (NOK) part called another class (default 10)")
    build.add_argument("--cost-false-nok", type=float, default=1.0,
                       help="cost of another part called the positive class (NOK) (default 1)")
    keygen = bsub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, required=True, help="private key file (PEM)")
    keygen.add_argument("--public", type=Path, help="public key file (default OUT.pub)")
    sign = bsub.add_parser("sign", help="sign a bundle directory")
    sign.add_argument("bundle", type=Path)
    sign.add_argument("--key", type=Path, required=True)
    verify = bsub.add_parser("verify", help="verify hashes, signature and self-test")
    verify.add_argument("bundle", type=Path)
    verify.add_argument("--key", type=Path, action="append", default=[],
                        help="trusted public key (repeatable)")
    verify.add_argument("--allow-unsigned", action="store_true")

    replay = sub.add_parser("replay", help="run features -> model -> monitors over a CSV, offline")
    replay.add_argument("--config", type=Path, required=True,
                        help="a config with model (and monitoring); a whole agent config works too")
    replay.add_argument("--csv", type=Path, required=True,
                        help="timestamp column, one column per tag, optional label column")
    replay.add_argument("--out", type=Path, required=True, help="REPORT.json to write")

    from agent.cli.alarms import add_parser as add_alarms_parser

    add_alarms_parser(sub, DEFAULT_CONFIG_PATH)
    from agent.cli.models import add_parser as add_models_parser

    add_models_parser(sub, DEFAULT_CONFIG_PATH)
    from agent.cli.audit import add_parser as add_audit_parser

    add_audit_parser(sub, DEFAULT_CONFIG_PATH)
    from agent.cli.opcua import add_parser as add_opcua_parser

    add_opcua_parser(sub, DEFAULT_CONFIG_PATH)

    from agent.demo.sim.process import DRIFT_HELP

    sim = sub.add_parser("sim", help="run the simulated moulding line (OPC UA + MQTT QC)",
                         description="The simulated moulding line. " + DRIFT_HELP)
    sim.add_argument("--opcua-port", type=int, default=4840)
    sim.add_argument("--mqtt-host", default="127.0.0.1")
    sim.add_argument("--mqtt-port", type=int, default=1883)
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument("--cycle", type=float, default=30.0, help="seconds per part")
    sim.add_argument("--qc-delay", type=float, default=60.0, help="seconds until QC result")
    sim.add_argument("--drift", help=DRIFT_HELP.replace("%", "%%"))
    sim.add_argument("--seed", type=int, default=7)

    demo = sub.add_parser("demo", help="simulated line + broker + first model + agent, no setup")
    demo.add_argument("--duration", type=float, default=120.0, help="wall seconds")
    demo.add_argument("--out", type=Path, default=Path("demo-out"))
    demo.add_argument("--speed", type=float, default=300.0, help="simulated seconds per second")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(_dispatch(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CsvError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not the input: permissions, a full disk
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _dispatch(args: argparse.Namespace) -> int:
    cmd = args.command
    if cmd == "check-config":
        return _check_config(args.path or args.config_opt or DEFAULT_CONFIG_PATH,
                             args.schema_only, args.credentials_dir)
    if cmd == "config-schema":
        print(json.dumps(AgentConfig.model_json_schema(), indent=2))
        return 0
    if cmd == "run":
        return _run(args.config)
    if cmd == "status":
        from agent.service.status import print_status

        return print_status(load_config(args.config), as_json=args.json)
    if cmd == "bundle":
        return _bundle(args)
    if cmd == "replay":
        from agent.monitor.replay import load_replay_config, run_replay

        return run_replay(load_replay_config(args.config), args.csv, args.out)
    if cmd == "alarms":
        from agent.cli.alarms import run as run_alarms

        return run_alarms(args)
    if cmd == "audit":
        from agent.cli.audit import run as run_audit

        return run_audit(args)
    if cmd == "opcua":
        from agent.cli.opcua import run as run_opcua

        return run_opcua(args)
    if cmd == "models":
        from agent.cli.models import run as run_models

        return run_models(args)
    if cmd == "sim":
        from agent.demo.sim.cli import run_sim

        return run_sim(args)
    if cmd == "demo":
        from agent.demo.run import run_demo

        return run_demo(duration=args.duration, out=args.out, speed=args.speed)
    raise AssertionError(cmd)


def _check_config(path: Path, schema_only: bool = False,
                  credentials_dir: Path | None = None) -> int:
    cfg = load_config(path)
    problems = [] if schema_only else preflight(cfg, credentials_dir)
    if problems:
        raise ConfigError(problems)
    print(f"{path}: valid ({len(cfg.sources)} source(s), {len(cfg.tag_names())} tag(s))")
    return 0


def _run(path: Path) -> int:
    from agent.config import load_config_dict
    from agent.service.agent import Agent
    from agent.service.logsetup import setup_logging

    raw = load_config_dict(path)
    cfg = parse_config(raw)
    problems = preflight(cfg, running=True)
    if problems:
        raise ConfigError(problems)
    setup_logging(cfg.log_level, cfg.log_json)

    async def main_async() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await Agent.from_raw(raw).run(stop)

    asyncio.run(main_async())
    return 0


def _bundle(args: argparse.Namespace) -> int:
    from agent.models import bundle as b

    action = args.bundle_command
    if action == "keygen":
        public = args.public or args.out.with_suffix(args.out.suffix + ".pub")
        fingerprint = b.generate_keypair(args.out, public)
        print(f"private key {args.out} (keep secret), public key {public}, id {fingerprint}")
        return 0
    if action == "sign":
        fingerprint = b.sign_bundle(args.bundle, args.key)
        print(f"signed {args.bundle} with key {fingerprint}")
        return 0
    if action == "verify":
        from agent.inference.runtimes import runtime_for_file

        bundle = b.verify_bundle(args.bundle, args.key, args.allow_unsigned)
        runtime = runtime_for_file(bundle.model_path, len(bundle.manifest.inputs))
        b.run_self_test(bundle, runtime.predict)
        print(f"{bundle.label}: ok (sha256 {bundle.sha256[:16]}, signed by "
              f"{bundle.signed_by or 'nobody'}, self-test passed)")
        return 0
    from agent.cli.bundle import build

    return build(args)
