"""Commissioning against the in-process asyncua server acting as a PLC that checks client
certificates: certificates made by `opcua certs create`, untrusted -> the reason in status,
trusted -> connected, a URI that does not match -> the reason; browse and its --yaml; bad input
gets one line and exit 2."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path
from typing import Any

import yaml

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine, node_id
from agent.ingest.sources.opcua.certs import certificate_uris
from tests.helpers.pki import opcua_app_cert
from tests.helpers.running import base_config, opcua_source, running_agent, wait_for

EDGE_AGENT = [str(Path(sys.executable).parent / "edge-agent")]


async def cli(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *EDGE_AGENT, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def secured_config(tmp_path: Path, port: int, ns: int, app_uri: str) -> dict[str, Any]:
    pki = tmp_path / "pki"
    src = opcua_source(port, ns, application_uri=app_uri, security={
        "mode": "SignAndEncrypt", "certificate": str(pki / "client-cert.der"),
        "private_key": str(pki / "client-key.pem"), "host_names": ["localhost", "127.0.0.1"]})
    return base_config(tmp_path / "state", [src])


def write_config(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


async def test_untrusted_then_trusted_certificate(tmp_path: Path,
                                                  capsys: Any) -> None:
    server_cert = opcua_app_cert(tmp_path, "server", "urn:factory-edge:sim:server", server=True)
    trusted = tmp_path / "plc-trusted"
    trusted.mkdir()
    port = free_port()
    app_uri = "urn:line-3:edge-agent"
    cfg = secured_config(tmp_path, port, 2, app_uri)
    path = write_config(tmp_path, cfg)
    assert main(["opcua", "certs", "create", "--config", str(path)]) == 0
    cert, key = tmp_path / "pki/client-cert.der", tmp_path / "pki/client-key.pem"
    assert certificate_uris(cert) == [app_uri]
    mode = key.stat().st_mode & 0o777  # 0600, or 0640 for the service's group when made by root
    assert mode in (0o600, 0o640) and mode & 0o007 == 0
    assert "SHA-256" in capsys.readouterr().out
    # a second run does not silently replace what the PLC may already trust
    assert main(["opcua", "certs", "create", "--config", str(path)]) == 2
    assert "--force" in capsys.readouterr().err

    options = SimOptions(opcua_port=port, certificate=server_cert, trusted_clients=trusted)
    async with SimulatedLine(options) as line, running_agent(cfg) as agent:
        source = agent.sources[0]
        await wait_for(lambda: source.status.reason == "BadCertificateUntrusted", 20,
                       "the server's reason")
        assert not source.status.connected
        assert "trust it on the PLC" in (source.status.last_error or "")
        assert str(cert) in (source.status.last_error or "")
        await wait_for(lambda: (tmp_path / "state/status.json").exists() and
                       "BadCertificateUntrusted" in (tmp_path / "state/status.json").read_text(),
                       10, "reason in status.json")
        assert main(["status", "--config", str(path)]) == 0
        shown = capsys.readouterr().out
        assert "BadCertificateUntrusted" in shown and "trust it on the PLC" in shown

        shutil.copy(cert, trusted / "edge-agent.der")  # the operator trusts it on the PLC
        await wait_for(lambda: source.status.connected, 15, "connected once trusted")
        assert source.status.reason is None and source.status.last_error is None
        await line.make_part()
        await wait_for(lambda: source.status.readings >= 18, 10, "data over the secure session")


async def test_certificate_uri_that_does_not_match_is_explained(tmp_path: Path) -> None:
    server_cert = opcua_app_cert(tmp_path, "server", "urn:factory-edge:sim:server", server=True)
    trusted = tmp_path / "plc-trusted"
    trusted.mkdir()
    port = free_port()
    cfg = secured_config(tmp_path, port, 2, "urn:line-3:edge-agent")
    assert main(["opcua", "certs", "create", "--config", str(write_config(tmp_path, cfg))]) == 0
    shutil.copy(tmp_path / "pki/client-cert.der", trusted / "edge-agent.der")
    cfg["sources"][0]["application_uri"] = "urn:line-3:renamed"  # changed after the certificate
    options = SimOptions(opcua_port=port, certificate=server_cert, trusted_clients=trusted)
    async with SimulatedLine(options), running_agent(cfg) as agent:
        source = agent.sources[0]
        await wait_for(lambda: source.status.reason == "BadCertificateUriInvalid", 20, "URI reason")
        assert "urn:line-3:renamed" in (source.status.last_error or "")
        assert "opcua certs create" in (source.status.last_error or "")
        assert not source.status.connected
    # check-config says it before the first contact
    path = write_config(tmp_path, cfg)
    assert main(["check-config", str(path)]) == 2


async def test_browse_lists_the_line_and_its_yaml_passes_check_config(tmp_path: Path) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        await line.make_part()
        url = f"opc.tcp://127.0.0.1:{port}/sim"
        code, out, err = await cli("opcua", "browse", url)
        assert code == 0, err
        assert f"{node_id('part_counter', line.ns)} Int64 = 1" in out
        assert f"{node_id('mould_temp', line.ns)} Double = " in out
        code, out, err = await cli("opcua", "endpoints", url)
        assert code == 0 and "None" in out and "Anonymous" in out, err
        code, snippet, err = await cli("opcua", "browse", url, "--yaml")
        assert code == 0, err
    doc = yaml.safe_load(snippet)
    ids = {n["node_id"] for n in doc["sources"][0]["nodes"]}
    assert {node_id(t, line.ns) for t in ("part_counter", "barrel_temp_1", "cushion")} <= ids
    config = tmp_path / "browsed.yaml"
    config.write_text(f"gateway_id: gw-1\nstate_dir: {tmp_path / 'state'}\n" + snippet)
    code, out, err = await cli("check-config", str(config))
    assert code == 0, err
    assert "valid (1 source(s), 13 tag(s))" in out


async def test_bad_input_gets_one_line_and_exit_2(tmp_path: Path) -> None:
    port = free_port()
    code, out, err = await cli("opcua", "browse", f"opc.tcp://127.0.0.1:{port}/nothing")
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and "nothing listens" in err
    code, _, err = await cli("opcua", "endpoints", f"opc.tcp://127.0.0.1:{port}")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "connection_refused" in err
    async with SimulatedLine(SimOptions(opcua_port=port)):
        url = f"opc.tcp://127.0.0.1:{port}/sim"
        code, _, err = await cli("opcua", "browse", url, "--node", "nsx")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "not an OPC UA node id" in err
        code, _, err = await cli("opcua", "browse", url, "--node", "ns=2;s=NoSuchNode")
        assert code == 2 and len(err.strip().splitlines()) == 1 and "BadNodeIdUnknown" in err
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    cfg = base_config(tmp_path, [opcua_source(port, security={
        "mode": "Sign", "certificate": str(blocker / "cert.der"),
        "private_key": str(blocker / "key.pem")})])
    code, _, err = await cli("opcua", "certs", "create", "--config", str(write_config(tmp_path, cfg)))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot create" in err
    assert "Traceback" not in err
