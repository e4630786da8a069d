"""check-config before the service starts: secrets named under /run/credentials/... are looked
up where systemd's LoadCredential= takes them from, and a certificate whose URI is not the
ApplicationUri the agent sends is caught before the first contact."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.cli import main
from agent.config import parse_config, preflight
from tests.helpers.pki import opcua_app_cert

CONFIG = """
gateway_id: press-line-1
state_dir: {state}
sources:
  - type: opcua
    name: s7
    endpoint: opc.tcp://192.168.0.1:4840
    username: edge
    password: {{file: /run/credentials/edge-agent.service/secret_opcua-password}}
    nodes: [{{tag: t, node_id: "ns=3;i=1"}}]
"""


def config(tmp_path: Path) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(CONFIG.format(state=tmp_path / "state"))
    return path


def test_secret_of_the_service_is_looked_up_in_the_credentials_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    creds = tmp_path / "credentials"
    creds.mkdir()
    path = config(tmp_path)
    assert main(["check-config", str(path), "--credentials-dir", str(creds)]) == 2
    err = capsys.readouterr().err
    assert f"{creds}/opcua-password, which does not exist" in err and "Traceback" not in err
    (creds / "opcua-password").write_text("s3cret\n")
    assert main(["check-config", str(path), "--credentials-dir", str(creds)]) == 0


def test_inside_the_service_the_path_is_checked_as_written(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "credentials"
    creds.mkdir()
    (creds / "opcua-password").write_text("s3cret\n")
    cfg = parse_config(__import__("yaml").safe_load(CONFIG.format(state=tmp_path)))
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "/run/credentials/edge-agent.service")
    problems = preflight(cfg)  # the service would read /run/credentials/...: it is not there
    assert problems and "file not found: /run/credentials/edge-agent.service/" in problems[0]
    assert preflight(cfg, credentials_dir=creds) == []  # an explicit directory wins
    assert preflight(cfg, credentials_dir=creds, running=True) != []  # `run` reads the real path


def test_certificate_uri_mismatch_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = opcua_app_cert(tmp_path, "client", "urn:somewhere:else", server=False)
    path = tmp_path / "agent.yaml"
    path.write_text(f"""
gateway_id: gw-1
state_dir: {tmp_path}
sources:
  - type: opcua
    name: plc
    endpoint: opc.tcp://127.0.0.1:4840
    security: {{mode: Sign, certificate: {cert}, private_key: {key}}}
    nodes: [{{tag: t, node_id: "ns=2;i=1"}}]
""")
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "sources[0].security.certificate: holds URI urn:somewhere:else" in err
    assert "urn:factory-edge-agent:gw-1" in err
