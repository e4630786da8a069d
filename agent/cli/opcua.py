"""edge-agent opcua: commissioning against a PLC.

  opcua certs create --config C [--source NAME] [--force]   client certificate and key
  opcua endpoints URL [--save-certificate FILE]             policies and modes the server offers
  opcua browse URL [--node ID] [--depth N] [--yaml]         node ids, names, types, values
               [--limit N] [--max-time S]                  (stops there with what it found)

Every failure is one line and exit 2 (bad input: a URL that does not answer, a node id the
server does not know, a path that cannot be written).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

from agent.config import OpcUaSourceConfig, load_config
from agent.errors import ConfigError


def add_parser(sub: Any, default_config: Path) -> None:
    opcua = sub.add_parser("opcua", help="OPC UA commissioning: certificates, endpoints, browse")
    opcua.set_defaults(handler=run)
    osub = opcua.add_subparsers(dest="opcua_command", required=True, metavar="ACTION",
                                title="actions")
    certs = osub.add_parser("certs", help="the agent's client certificate")
    csub = certs.add_subparsers(dest="certs_command", required=True, metavar="ACTION",
                                title="actions")
    create = csub.add_parser("create", help="make the certificate and key the config names")
    create.add_argument("--config", type=Path, default=default_config, metavar="FILE",
                        help="the agent's YAML config")
    create.add_argument("--source", help="only this OPC UA source (default: every secured one)")
    create.add_argument("--force", action="store_true", help="replace existing files")
    eps = osub.add_parser("endpoints", help="security policies and modes the server offers")
    eps.add_argument("url", help="the server, opc.tcp://HOST:PORT")
    eps.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    eps.add_argument("--save-certificate", type=Path, metavar="FILE",
                     help="write the server's certificate (DER) here, e.g. into security.trust_dir")
    br = osub.add_parser("browse", help="list nodes: ids, names, data types, current values")
    br.add_argument("url", help="the server, opc.tcp://HOST:PORT")
    br.add_argument("--node", default="i=85", help="start node (default: the Objects folder)")
    br.add_argument("--depth", type=int, default=3, help="levels below the start node")
    br.add_argument("--limit", type=int, default=1000, help="stop after this many nodes")
    br.add_argument("--yaml", action="store_true", help="print a sources entry ready to paste")
    br.add_argument("--timeout", type=float, default=5.0, help="seconds per request")
    br.add_argument("--max-time", type=float, default=None, metavar="S",
                    help="stop after this many seconds and print what was found (default: "
                         "ten request timeouts, at least 30 s)")
    br.add_argument("--config", type=Path, metavar="FILE",
                    help="take security and user from this config's OPC UA source")
    br.add_argument("--source", help="which OPC UA source of --config (default: the first)")


def run(args: argparse.Namespace) -> int:
    # the command says what went wrong in one line; asyncua's own log lines would only repeat it
    logging.getLogger("asyncua").setLevel(logging.CRITICAL)
    if args.opcua_command == "certs":
        return _certs_create(args)
    if not args.url.startswith("opc.tcp://"):
        raise ConfigError([f"{args.url}: not an OPC UA endpoint; use opc.tcp://host:4840"])
    if args.opcua_command == "endpoints":
        return asyncio.run(_endpoints(args))
    if args.depth < 1:
        raise ConfigError(["--depth: must be at least 1"])
    if args.max_time is not None and not args.max_time > 0:
        raise ConfigError(["--max-time: must be more than 0 seconds"])
    return asyncio.run(_browse(args))


def _sources(path: Path, name: str | None) -> list[tuple[int, OpcUaSourceConfig]]:
    cfg = load_config(path)
    found = [(i, s) for i, s in enumerate(cfg.sources) if isinstance(s, OpcUaSourceConfig)
             and (name is None or s.name == name)]
    if not found:
        raise ConfigError([f"{path}: no OPC UA source{' named ' + name if name else ''}"])
    return found


def _certs_create(args: argparse.Namespace) -> int:
    from agent.ingest.sources.opcua.certs import create_certificate
    from agent.ingest.sources.opcua.client import application_uri

    cfg = load_config(args.config)
    chosen = [(i, s) for i, s in _sources(args.config, args.source)
              if args.source or s.security.mode != "None" or s.security.certificate]
    if not chosen:
        raise ConfigError([f"{args.config}: no OPC UA source uses security; set security.mode "
                           "and the certificate/private_key files first"])
    for i, src in chosen:
        made = create_certificate(src, application_uri(src, cfg.gateway_id), f"sources[{i}]",
                                  args.force)
        mode = made.private_key.stat().st_mode & 0o777
        print(f"{src.name}: certificate {made.certificate} and key {made.private_key} "
              f"(mode {mode:04o})")
        print(f"  ApplicationUri {made.application_uri}; hosts {', '.join(made.host_names)}; "
              f"valid until {made.not_after}")
        print(f"  SHA-256 {made.sha256}")
        print("  next: trust this certificate on the PLC (it may show up as 'rejected' after the "
              "agent's first attempt), then check the agent with `edge-agent status`")
    return 0


async def _connect_error(exc: BaseException, url: str) -> ConfigError:
    from agent.ingest.sources.opcua.reasons import Context, explain

    refusal = explain(exc, Context(url, "", None, "None", "None"))
    return ConfigError([f"{url}: {refusal.message} [{refusal.reason}]"])


def _undecodable(url: str, exc: ValueError) -> ConfigError:
    from agent.ingest.sources.opcua.browse import printable

    return ConfigError([f"{url}: the server's answer is not valid OPC UA ({printable(str(exc))[:120]}); "
                        "is it an OPC UA server, and of a version the agent supports?"])


async def _endpoints(args: argparse.Namespace) -> int:
    from agent.ingest.sources.opcua.browse import endpoints
    from agent.ingest.sources.opcua.source import HANDSHAKE_ERRORS

    try:
        found = await endpoints(args.url, args.timeout)
    except HANDSHAKE_ERRORS as exc:
        raise await _connect_error(exc, args.url) from None
    except ValueError as exc:  # asyncua's decoder: an enum value or text the server made up
        raise _undecodable(args.url, exc) from None
    if not found:
        raise ConfigError([f"{args.url}: the server offers no endpoint at all; check the URL's "
                           "path and the server's endpoint configuration"])
    for ep in found:
        print(f"{ep.policy:22} {ep.mode:15} users: {', '.join(ep.user_tokens) or '-'}")
    print(f"server {found[0].server_uri} at {found[0].url}")
    print(f"certificate {found[0].certificate_summary()}")
    if all(ep.mode == "None" for ep in found):
        print("no secured endpoint: this server offers security mode None only; keep "
              "security.mode None, or enable Sign/SignAndEncrypt on the PLC first")
    cert = next((ep.certificate for ep in found if ep.certificate), None)
    if args.save_certificate:
        if cert is None:
            raise ConfigError([f"{args.url}: the server sends no certificate (security None only)"])
        try:
            args.save_certificate.write_bytes(cert)
        except OSError as exc:
            raise ConfigError([f"--save-certificate: cannot write {args.save_certificate} "
                               f"({exc.strerror})"]) from None
        print(f"saved the server certificate to {args.save_certificate}")
    return 0


async def _browse(args: argparse.Namespace) -> int:
    from asyncua import Client, ua

    from agent.config.sources import node_id_problem
    from agent.ingest.sources.opcua.browse import browse, nodes_yaml, printable
    from agent.ingest.sources.opcua.client import application_uri, make_client
    from agent.ingest.sources.opcua.source import HANDSHAKE_ERRORS, _close_quietly

    problem = node_id_problem(args.node)
    try:
        ua.NodeId.from_string(args.node)
    except (ValueError, ua.UaError, IndexError, KeyError):
        problem = problem or "not an OPC UA node id"
    if problem:
        raise ConfigError([f"--node: '{printable(args.node)}': {problem}; use a node id such as "
                           "'ns=2;i=1001' or 'ns=3;s=Machine.Tag'"])
    try:
        if args.config:
            _, src = _sources(args.config, args.source)[0]
            src = src.model_copy(update={"endpoint": args.url, "timeout_s": args.timeout})
            client = await make_client(src, application_uri(src, load_config(args.config).gateway_id))
        else:
            client = Client(args.url, timeout=args.timeout)
        async with asyncio.timeout(args.timeout * 2):
            await client.connect()
    except HANDSHAKE_ERRORS as exc:
        raise await _connect_error(exc, args.url) from None
    except ValueError as exc:
        raise _undecodable(args.url, exc) from None
    within = args.max_time if args.max_time is not None else max(30.0, args.timeout * 10)
    try:
        # the walk stops itself at the deadline, between requests (cancelling asyncua mid-request
        # loses the answer in its own wait_for); the timeout is for a server that stops answering
        async with asyncio.timeout(within + args.timeout * 2):
            nodes, stopped = await browse(client, args.node, args.depth, args.limit,
                                          deadline=time.monotonic() + within)
        if stopped:
            print(f"browse stopped after {within:g} s with {len(nodes)} nodes (a large address "
                  "space): browse below one folder with --node, or give --max-time", file=sys.stderr)
    except ua.UaStatusCodeError as exc:
        name = ua.StatusCode(exc.code).name if exc.code else type(exc).__name__
        raise ConfigError([f"--node {printable(args.node)}: the server answers {name} (no such "
                           "node? browse from i=85 to see what exists)"]) from None
    except HANDSHAKE_ERRORS as exc:
        raise await _connect_error(exc, args.url) from None
    except ValueError as exc:
        raise _undecodable(args.url, exc) from None
    finally:
        await _close_quietly(client, args.timeout)
    if args.yaml:
        print(nodes_yaml(args.url, nodes), end="")
        return 0
    for n in nodes:
        indent = "  " * (n.depth - 1)
        typed = f" {printable(n.data_type or '?')} = {n.value}" if n.node_class == "Variable" else ""
        print(f"{indent}{printable(n.path[-1])}  [{n.node_class}] {printable(n.node_id)}{typed}")
    if not nodes:
        print(f"(no nodes below {args.node} outside namespace 0)")
    return 0
