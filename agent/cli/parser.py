"""The edge-agent command line, declared: every command with its options, help text and default.

Same style as edge-hub (argparse sub-commands, docs/operator-guide.md): options follow the
command they belong to, every option has help and shows its default, each command names its
handler (``set_defaults(handler=...)``) and main dispatches through that, never an if-chain."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from agent import __version__
from agent.cli import commands
from agent.cli.helpformat import Parser
from agent.config import DEFAULT_CONFIG_PATH

DESCRIPTION = """\
The factory edge agent: reads OPC UA / MQTT / Sparkplug B data, runs its models locally,
watches drift and accuracy, buffers everything in SQLite and syncs with the hub.

commands: run, check-config, config-schema, status, models, alarms, bundle, replay, audit,
opcua, sim, demo. `edge-agent COMMAND --help` shows a command's options.
Guide: docs/operator-guide.md; settings: docs/configuration.md."""


def config_option(p: argparse.ArgumentParser, default: Path | None = DEFAULT_CONFIG_PATH,
                  dest: str = "config") -> None:
    p.add_argument("--config", type=Path, default=default, dest=dest, metavar="FILE",
                   help="the agent's YAML config")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="edge-agent", description=DESCRIPTION)
    p.add_argument("--version", action="version", version=f"edge-agent {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", title="commands")

    run = sub.add_parser("run", help="run the agent (systemd: edge-agent.service)")
    config_option(run)
    run.set_defaults(handler=commands.run)

    check = sub.add_parser("check-config", help="validate a config file; exit 2 on problems",
                           description="Validate a config: schema, then that the files it names "
                                       "exist (keys, certificates, secrets). Exit 2 on problems.")
    check.add_argument("path", type=Path, nargs="?", default=None, metavar="FILE",
                       help=f"config to check (or --config FILE; default {DEFAULT_CONFIG_PATH})")
    config_option(check, default=None, dest="config_opt")
    check.add_argument("--schema-only", action="store_true",
                       help="skip the checks that named files (keys, certificates) exist")
    check.add_argument("--credentials-dir", type=Path, default=None, metavar="DIR",
                       help="where secrets named under /run/credentials/... are kept before the "
                            "service loads them (default /etc/edge-agent/credentials)")
    check.set_defaults(handler=commands.check_config)

    schema = sub.add_parser("config-schema", help="print the config JSON Schema")
    schema.set_defaults(handler=commands.config_schema)

    status = sub.add_parser("status", help="show what the agent is doing, from its state dir")
    config_option(status)
    status.add_argument("--json", action="store_true", help="print status.json as it is")
    status.set_defaults(handler=commands.status)

    _bundle_parser(sub)

    replay = sub.add_parser("replay", help="run features -> model -> monitors over a CSV, offline")
    replay.add_argument("--config", type=Path, required=True, metavar="FILE",
                        help="a config with model (and monitoring); a whole agent config works too")
    replay.add_argument("--csv", type=Path, required=True, metavar="FILE",
                        help="timestamp column, one column per tag, optional label column")
    replay.add_argument("--out", type=Path, required=True, metavar="FILE", help="REPORT.json to write")
    replay.add_argument("--model", default=None, metavar="NAME",
                        help="which model of a config that runs several (a name of models:)")
    replay.set_defaults(handler=commands.replay)

    from agent.cli import alarms, audit, models, opcua

    for module in (alarms, models, audit, opcua):
        module.add_parser(sub, DEFAULT_CONFIG_PATH)

    from agent.demo.sim.process import DRIFT_HELP

    sim = sub.add_parser("sim", help="run the simulated moulding line (OPC UA + MQTT QC)",
                         description="The simulated moulding line. " + DRIFT_HELP)
    sim.add_argument("--opcua-port", type=int, default=4840, help="OPC UA server port")
    sim.add_argument("--mqtt-host", default="127.0.0.1", help="broker for the QC results")
    sim.add_argument("--mqtt-port", type=int, default=1883, help="broker port")
    sim.add_argument("--speed", type=float, default=1.0, help="simulated seconds per second")
    sim.add_argument("--cycle", type=float, default=30.0, help="seconds per part")
    sim.add_argument("--qc-delay", type=float, default=60.0, help="seconds until QC result")
    sim.add_argument("--drift", help=DRIFT_HELP.replace("%", "%%"))
    sim.add_argument("--seed", type=int, default=7, help="random seed of the line")
    sim.set_defaults(handler=commands.sim)

    demo = sub.add_parser("demo", help="simulated line + broker + models + agent + hub, no setup")
    demo.add_argument("--duration", type=float, default=120.0, help="wall seconds")
    demo.add_argument("--out", type=Path, default=Path("demo-out"), metavar="DIR",
                      help="where the summary, report and logs go")
    demo.add_argument("--speed", type=float, default=300.0, help="simulated seconds per second")
    demo.set_defaults(handler=commands.demo)
    return p


def _bundle_parser(sub: Any) -> None:
    bundle = sub.add_parser("bundle", help="build, sign and verify model bundles")
    bsub = bundle.add_subparsers(dest="bundle_command", required=True, metavar="ACTION",
                                 title="actions")
    build = bsub.add_parser("build", help="build a bundle from a model and its training CSV")
    build.add_argument("--model", type=Path, required=True, metavar="FILE",
                       help="the model file (.onnx or .tflite)")
    build.add_argument("--train-csv", type=Path, required=True, metavar="FILE",
                       help="the rows the model was fitted on (input references)")
    build.add_argument("--label", required=True, help="label column of the CSV")
    build.add_argument("--name", required=True, help="model name (the hub's registry key)")
    build.add_argument("--version", required=True, dest="model_version", metavar="VERSION",
                       help="version, e.g. 1.2.0")
    build.add_argument("--out", type=Path, required=True, metavar="DIR", help="bundle folder to write")
    build.add_argument("--inputs", help="comma-separated feature columns, in model order "
                                        "(default: every column but timestamp and label)")
    build.add_argument("--holdout-csv", type=Path, metavar="FILE",
                       help="labelled data the model never saw (default: the newest 25%% of "
                            "--train-csv by time is held out)")
    build.add_argument("--positive-class", help="class whose score is monitored (e.g. NOK)")
    build.add_argument("--sign-key", type=Path, metavar="FILE", help="Ed25519 private key to sign with")
    build.add_argument("--sample-rate", type=float, default=1.0,
                       help="samples per second on the line (sets the false-alarm budget)")
    build.add_argument("--false-alarms-per-week", type=float, default=1.0,
                       help="false alarms per week for the whole model, all detectors and streams")
    build.add_argument("--warnings-per-week", type=float, default=5.0,
                       help="warnings per week for the whole model")
    build.add_argument("--window", type=int, default=500, help="monitoring window in samples")
    build.add_argument("--categorical", help="comma-separated inputs that are category codes")
    build.add_argument("--cost-missed-nok", type=float, default=10.0,
                       help="cost of a positive-class (NOK) part called another class")
    build.add_argument("--cost-false-nok", type=float, default=1.0,
                       help="cost of another part called the positive class (NOK)")
    keygen = bsub.add_parser("keygen", help="make an Ed25519 signing key pair")
    keygen.add_argument("--out", type=Path, required=True, metavar="FILE", help="private key file (PEM)")
    keygen.add_argument("--public", type=Path, metavar="FILE", help="public key file (default OUT.pub)")
    sign = bsub.add_parser("sign", help="sign a bundle directory")
    sign.add_argument("bundle", type=Path, metavar="DIR", help="the bundle folder")
    sign.add_argument("--key", type=Path, required=True, metavar="FILE", help="Ed25519 private key (PEM)")
    verify = bsub.add_parser("verify", help="verify hashes, signature and self-test")
    verify.add_argument("bundle", type=Path, metavar="PATH", help="bundle folder or .tar")
    verify.add_argument("--key", type=Path, action="append", default=[], metavar="FILE",
                        help="trusted public key (repeatable)")
    verify.add_argument("--allow-unsigned", action="store_true", help="accept a bundle without signature")
    bundle.set_defaults(handler=commands.bundle)
