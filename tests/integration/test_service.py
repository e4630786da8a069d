"""Running as a service: systemd unit checks, the notify protocol on a real datagram socket
(including a hung component that stops the watchdog), and the health/metrics endpoint."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from tests.helpers.running import base_config, http_get, opcua_source, running_agent, wait_for

ROOT = Path(__file__).parents[2]


@pytest.mark.parametrize("name", ["edge-agent", "edge-hub"])
def test_units_pass_systemd_analyze_verify(tmp_path: Path, name: str) -> None:
    exe = shutil.which("systemd-analyze")
    if exe is None:
        pytest.skip("systemd-analyze is not installed (apt-get install systemd)")
    binary = Path(sys.executable).parent / name
    unit = (ROOT / f"systemd/{name}.service").read_text()
    needed = ["Restart=on-failure", "StartLimitBurst=", f"User={name}", f"StateDirectory={name}",
              f"ConfigurationDirectory={name}", "LoadCredential=", "ProtectSystem=strict",
              "ProtectHome=", "PrivateTmp=", "NoNewPrivileges=yes", "CapabilityBoundingSet=\n",
              "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX", "MemoryMax="]
    if name == "edge-agent":
        needed += ["Type=notify", "WatchdogSec="]
    for line in needed:
        assert line in unit, line
    # verify insists that ExecStart exists: point it at this checkout's console script
    local = tmp_path / f"{name}.service"
    local.write_text(unit.replace(f"/opt/factory-edge-agent/venv/bin/{name}", str(binary)))
    result = subprocess.run([exe, "verify", str(local)], capture_output=True, text=True, timeout=60)
    # it exits 0 on non-fatal warnings: any output at all is a failure here
    assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", (
        result.stdout + result.stderr)


def notify_socket(path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    return sock


def drain(sock: socket.socket) -> list[str]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096).decode())
        except BlockingIOError:
            return messages


async def test_sd_notify_ready_watchdog_hang_and_stopping(tmp_path: Path, trained: dict[str, Path],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    sock_path = tmp_path / "notify.sock"
    sock = notify_socket(sock_path)
    monkeypatch.setenv("NOTIFY_SOCKET", str(sock_path))
    monkeypatch.setenv("WATCHDOG_USEC", "200000")  # WatchdogSec=0.2: ping every 0.1 s
    port = free_port()
    received: list[str] = []
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                          model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]})
        async with running_agent(cfg) as agent:
            await wait_for(lambda: bool(received.extend(drain(sock)) or
                                        sum("WATCHDOG=1" in m for m in received) >= 5), what="pings")
            assert received[0].startswith("READY=1\nSTATUS=")
            assert "moulding-nok 1.0.0" in received[0]

            never = asyncio.Event()

            async def hung_flush() -> None:  # the outbox writer stops making progress
                await never.wait()

            agent._flush = hung_flush  # type: ignore[method-assign]
            await asyncio.sleep(1.0)  # the flusher's limit is 5 x 0.1 s
            drain(sock)
            await asyncio.sleep(1.0)
            assert not any("WATCHDOG=1" in m for m in drain(sock)), "a hung component got pinged"
            assert "flusher" in agent.stuck_components()
            never.set()
        assert any(m.startswith("STOPPING=1") for m in drain(sock))
    sock.close()


async def test_health_ready_and_metrics(tmp_path: Path, trained: dict[str, Path]) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg = base_config(tmp_path, [opcua_source(port, line.ns)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                          model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]})
        async with running_agent(cfg) as agent:
            server = agent.health_server
            assert server is not None
            await wait_for(lambda: server.port != 0 and agent.sources[0].status.connected, what="up")
            for _ in range(5):
                await line.make_part()
            await wait_for(lambda: agent.predictions >= 5, what="predictions")
            await asyncio.sleep(2.2)  # the outbox figures come with the status write
            assert await http_get(server.port, "/healthz") == (200, "ok\n")
            code, body = await http_get(server.port, "/readyz")
            assert code == 200 and '"ready": true' in body
            code, metrics = await http_get(server.port, "/metrics")
            assert code == 200
            # series of one model carry its name (a gateway may run several)
            for needle in ('edge_readings_total{source="plc"}',
                           'edge_predictions_total{model="moulding-nok"} 5.0',
                           'edge_model_info{model="moulding-nok",name="moulding-nok"', 'version="1.0.0"',
                           'edge_inference_seconds_bucket{le="1e-05",model="moulding-nok"}',
                           'edge_drift_psi{feature="mould_temp",model="moulding-nok"}',
                           'edge_source_connected{source="plc"} 1.0', "edge_outbox_records",
                           'edge_model_health{model="moulding-nok"} 0.0',
                           'edge_channel_dropped_total{channel="readings:moulding-nok"} 0.0'):
                assert needle in metrics, needle
            assert (await http_get(server.port, "/nope"))[0] == 404


async def test_readyz_names_what_is_missing(tmp_path: Path) -> None:
    cfg = base_config(tmp_path, [opcua_source(free_port())])
    async with running_agent(cfg) as agent:
        server = agent.health_server
        assert server is not None
        await wait_for(lambda: server.port != 0, what="listening")
        code, body = await http_get(server.port, "/readyz")
        assert code == 503
        assert "no model" in body and "source plc not connected" in body
