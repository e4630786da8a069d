"""Handlers of the edge-agent commands that have no module of their own (one function each,
named by the parser with set_defaults(handler=...)). Heavy imports stay inside the handler: the
command line starts fast and `check-config` never loads onnxruntime."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal

from agent.config import DEFAULT_CONFIG_PATH, AgentConfig, load_config, parse_config, preflight
from agent.errors import ConfigError


def check_config(args: argparse.Namespace) -> int:
    if args.path is not None and args.config_opt is not None and args.path != args.config_opt:
        raise ConfigError([f"check-config: two configs given ({args.path} and --config "
                           f"{args.config_opt}); give one, as FILE or as --config FILE"])
    path = args.path or args.config_opt or DEFAULT_CONFIG_PATH
    cfg = load_config(path)
    problems = [] if args.schema_only else preflight(cfg, args.credentials_dir)
    if problems:
        raise ConfigError(problems)
    print(f"{path}: valid ({len(cfg.sources)} source(s), {len(cfg.tag_names())} tag(s))")
    return 0


def config_schema(args: argparse.Namespace) -> int:
    print(json.dumps(AgentConfig.model_json_schema(), indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    from agent.config import load_config_dict
    from agent.service.agent import Agent
    from agent.service.logsetup import setup_logging

    raw = load_config_dict(args.config)
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


def status(args: argparse.Namespace) -> int:
    from agent.service.status import print_status

    return print_status(load_config(args.config), as_json=args.json)


def replay(args: argparse.Namespace) -> int:
    from agent.monitor.replay import load_replay_config, run_replay

    return run_replay(load_replay_config(args.config, args.model), args.csv, args.out)


def sim(args: argparse.Namespace) -> int:
    from agent.demo.sim.cli import run_sim

    return run_sim(args)


def demo(args: argparse.Namespace) -> int:
    from agent.demo.run import run_demo

    return run_demo(duration=args.duration, out=args.out, speed=args.speed)


def bundle(args: argparse.Namespace) -> int:
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

        verified = b.verify_bundle(args.bundle, args.key, args.allow_unsigned)
        runtime = runtime_for_file(verified.model_path, len(verified.manifest.inputs))
        b.run_self_test(verified, runtime.predict)
        print(f"{verified.label}: ok (sha256 {verified.sha256[:16]}, signed by "
              f"{verified.signed_by or 'nobody'}, self-test passed)")
        return 0
    from agent.cli.bundle import build

    return build(args)
