"""Security settings against real servers: OPC UA Basic256Sha256 with certificates and
user/password, MQTT over TLS with a CA-verified mosquitto."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from agent.demo.sim.broker import free_port, mosquitto_path, wait_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from tests.helpers.pki import opcua_app_cert, tls_ca_and_server
from tests.helpers.running import base_config, opcua_source, running_agent, wait_for

CLIENT_URI = "urn:freeopcua:client"  # asyncua's client application URI


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_opcua_basic256sha256_with_user_password(tmp_path: Path, mode: str) -> None:
    server_cert = opcua_app_cert(tmp_path, "server", "urn:factory-edge:sim:server", server=True)
    client_cert, client_key = opcua_app_cert(tmp_path, "client", CLIENT_URI, server=False)
    port = free_port()
    secret = tmp_path / "opcua-password"
    secret.write_text("line-3-secret\n")
    options = SimOptions(opcua_port=port, certificate=server_cert, users={"edge": "line-3-secret"})
    async with SimulatedLine(options) as line:
        src = opcua_source(port, line.ns, username="edge", password={"file": str(secret)},
                           security={"mode": mode, "certificate": str(client_cert),
                                     "private_key": str(client_key)})
        async with running_agent(base_config(tmp_path, [src])) as agent:
            source = agent.sources[0]
            await wait_for(lambda: source.status.connected, 20, "secure session")
            await line.make_part()
            await wait_for(lambda: source.status.readings >= 18, what="data over a secure channel")


async def test_opcua_wrong_password_is_refused_and_retried(tmp_path: Path) -> None:
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port, users={"edge": "right"})) as line:
        src = opcua_source(port, line.ns, username="edge", password="wrong")
        async with running_agent(base_config(tmp_path, [src])) as agent:
            source = agent.sources[0]
            await wait_for(lambda: source.status.reconnects >= 1, 15, "a refused attempt")
            assert not source.status.connected and source.status.readings == 0
            assert "wrong" not in (source.status.last_error or "")  # the secret is never echoed
            # the server's status code, with what to do, is the reason
            assert source.status.reason in ("BadUserAccessDenied", "BadIdentityTokenRejected")
            assert "password" in (source.status.last_error or "")


@pytest.fixture()
def tls_broker() -> Any:
    if not mosquitto_path():
        pytest.skip("mosquitto is not installed: the TLS test needs a real TLS broker")
    # mosquitto started as root drops to its own user: its files must be readable by it
    tmp_path = Path(tempfile.mkdtemp(prefix="mosq-tls-"))
    tmp_path.chmod(0o755)
    ca, cert, key = tls_ca_and_server(tmp_path)
    key.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosq.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\ncafile {ca}\n"
                    f"certfile {cert}\nkeyfile {key}\n")
    proc = subprocess.Popen([str(mosquitto_path()), "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port, ca
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(tmp_path, ignore_errors=True)


async def test_mqtt_over_tls(tmp_path: Path, tls_broker: tuple[int, Path]) -> None:
    port, ca = tls_broker
    src = {"type": "mqtt", "name": "secure", "broker": {"host": "127.0.0.1", "port": port,
                                                        "tls": {"ca_file": str(ca)}},
           "topics": [{"topic": "s/t", "tags": [{"tag": "t"}]}]}
    async with running_agent(base_config(tmp_path, [src])) as agent:
        source = agent.sources[0]
        await wait_for(lambda: source.status.connected, 15, "TLS connect")
        async with aiomqtt.Client("127.0.0.1", port, tls_params=aiomqtt.TLSParameters(ca_certs=str(ca))) as c:
            await c.publish("s/t", b"4.5", qos=1)
        await wait_for(lambda: source.status.readings == 1, what="a reading over TLS")


async def test_mqtt_tls_with_an_untrusted_ca_never_connects(tmp_path: Path,
                                                            tls_broker: tuple[int, Path]) -> None:
    port, _ = tls_broker
    other_ca, _, _ = tls_ca_and_server(tmp_path)
    src = {"type": "mqtt", "name": "secure", "broker": {"host": "127.0.0.1", "port": port,
                                                        "tls": {"ca_file": str(other_ca)},
                                                        "reconnect": {"initial_s": 0.2, "max_s": 0.5}},
           "topics": [{"topic": "s/t", "tags": [{"tag": "t"}]}]}
    async with running_agent(base_config(tmp_path, [src])) as agent:
        source = agent.sources[0]
        await wait_for(lambda: source.status.reconnects >= 2, 15, "refused handshakes")
        assert not source.status.connected


@pytest.fixture()
def password_broker() -> Any:
    exe, passwd = mosquitto_path(), shutil.which("mosquitto_passwd")
    if not exe or not passwd:
        pytest.skip("mosquitto and mosquitto_passwd are needed for the password test")
    tmp_path = Path(tempfile.mkdtemp(prefix="mosq-pw-"))
    tmp_path.chmod(0o755)
    pwfile = tmp_path / "passwd"
    subprocess.run([passwd, "-c", "-b", str(pwfile), "edge", "s3cret-pw"], check=True,
                   capture_output=True)
    pwfile.chmod(0o644)
    port = free_port()
    conf = tmp_path / "mosq.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {pwfile}\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    yield port
    proc.terminate()
    proc.wait(5)
    shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.mark.parametrize(("password", "connects"), [("s3cret-pw", True), ("wrong", False)])
async def test_mqtt_username_password_from_a_file(tmp_path: Path, password_broker: int, password: str,
                                                  connects: bool) -> None:
    secret = tmp_path / "mqtt-password"
    secret.write_text(password + "\n")
    src = {"type": "mqtt", "name": "auth", "topics": [{"topic": "a/b", "tags": [{"tag": "t"}]}],
           "broker": {"host": "127.0.0.1", "port": password_broker, "username": "edge",
                      "password": {"file": str(secret)}, "reconnect": {"initial_s": 0.2, "max_s": 0.5}}}
    async with running_agent(base_config(tmp_path, [src])) as agent:
        source = agent.sources[0]
        if connects:
            await wait_for(lambda: source.status.connected, 15, "authenticated connect")
        else:
            await wait_for(lambda: source.status.reconnects >= 2, 15, "refused logins")
            assert not source.status.connected
            assert password not in (source.status.last_error or "")
