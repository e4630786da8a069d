"""Configuration: profiles validate, broken configs name the place, no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.cli import main
from agent.config import load_config, reveal

PROFILES = sorted((Path(__file__).parents[2] / "firmware-configs").glob("*.yaml"))

MINIMAL = """
gateway_id: gw-1
state_dir: {state}
sources:
  - type: opcua
    name: plc
    endpoint: opc.tcp://127.0.0.1:4840
    nodes:
      - {{tag: t1, node_id: "ns=2;i=1001"}}
"""


def test_every_profile_exists_and_there_are_six() -> None:
    assert len(PROFILES) >= 6


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.name)
def test_every_profile_validates(profile: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--schema-only", str(profile)]) == 0
    assert "valid" in capsys.readouterr().out


# (yaml body, expected place at the start of a reported line)
BROKEN = [
    ("gateway_id: gw\nsources: []\n", "sources: "),
    ("sources:\n  - {type: opcua, name: a, endpoint: 'opc.tcp://h:1', nodes: [{tag: t, node_id: 'x'}]}\n",
     "gateway_id: "),
    ("gateway_id: gw\nsources:\n  - {type: opcua, name: a, endpoint: 'opc.tcp://h:1', nodes: "
     "[{tag: t, node_id: 'ns=2;i=1'}, {tag: u, node_id: 'ns=2;i=2'}, {tag: v, node_id: 'ns=2;i=3'}, "
     "{tag: w, node_id: 'bogus'}]}\n", "sources[0].nodes[3].node_id: "),
    ("gateway_id: gw\nsources:\n  - {type: opcua, name: a, endpoint: 'opc.tcp://h:1', nodes: [{tag: t, "
     "node_id: 'ns=2;i=1'}]}\n  - {type: mqtt, name: b, broker: {host: h, port: 99999}, topics: "
     "[{topic: a/b, tags: [{tag: x}]}]}\n", "sources[1].broker.port: "),
    ("gateway_id: gw\nsources:\n  - {type: modbus, name: a}\n", "sources[0]: "),
    ("gateway_id: gw\nsources:\n  - {type: mqtt, name: b, broker: {host: h}, topics: "
     "[{topic: 'a/#/b', tags: [{tag: x}]}]}\n", "sources[0].topics[0]: "),
    ("gateway_id: gw\nsurces: []\n", "surces: "),
    ("gateway_id: gw\nsources:\n  - {type: opcua, name: a, endpoint: 'http://h', nodes: [{tag: t, "
     "node_id: 'ns=2;i=1'}]}\n", "sources[0].endpoint: "),
    ("gateway_id: gw\nsources:\n  - {type: opcua, name: a, endpoint: 'opc.tcp://h:1', security: "
     "{mode: Sign}, nodes: [{tag: t, node_id: 'ns=2;i=1'}]}\n", "sources[0].security: "),
    ("gateway_id: gw\nfeatures: {mode: trigger}\nsources:\n  - {type: opcua, name: a, endpoint: "
     "'opc.tcp://h:1', nodes: [{tag: t, node_id: 'ns=2;i=1'}]}\n", "features: "),
    ("gateway_id: gw\noutbox: {synchronous: OFF}\nsources:\n  - {type: opcua, name: a, endpoint: "
     "'opc.tcp://h:1', nodes: [{tag: t, node_id: 'ns=2;i=1'}]}\n", "outbox.synchronous: "),
    ("gateway_id: [unclosed\n", ":1:"),
    ("- just\n- a list\n", "(top level): "),
    ("gateway_id: gw\nmodel: {runtime: {type: tflite, threads: 0}}\nsources:\n  - {type: opcua, "
     "name: a, endpoint: 'opc.tcp://h:1', nodes: [{tag: t, node_id: 'ns=2;i=1'}]}\n",
     "model.runtime.threads: "),
    ("gateway_id: gw\nstate_dir: ${UNSET_VARIABLE_FOR_TEST}\nsources: []\n",
     "${UNSET_VARIABLE_FOR_TEST}: "),
]


@pytest.mark.parametrize(("body", "place"), BROKEN, ids=[p for _, p in BROKEN])
def test_broken_config_exits_2_naming_the_place(
    body: str, place: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(body)
    assert main(["check-config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert any(place in line for line in lines), err


def test_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", str(tmp_path / "nope.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_env_substitution_and_secret_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    body = MINIMAL.format(state=tmp_path) + (
        "    username: ${OPC_USER}\n    password: {file: " + str(secret) + "}\n"
        "    publishing_interval_ms: ${PUB_MS:-250}\n")
    path = tmp_path / "a.yaml"
    path.write_text(body)
    cfg = load_config(path, env={"OPC_USER": "operator"})
    src = cfg.sources[0]
    assert src.type == "opcua"
    assert src.username == "operator"
    assert src.publishing_interval_ms == 250
    assert reveal(src.password) == "s3cret"
    assert "s3cret" not in repr(cfg)  # secrets never show up in logs or reprs


def test_plain_password_is_hidden_in_repr(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(MINIMAL.format(state=tmp_path) + "    password: hunter2\n")
    cfg = load_config(path)
    assert "hunter2" not in repr(cfg) and reveal(cfg.sources[0].password) == "hunter2"


def test_preflight_names_missing_key_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(MINIMAL.format(state=tmp_path) + "model:\n  trusted_keys: [/nonexistent/hub.pub]\n")
    assert main(["check-config", str(path)]) == 2
    assert "model.trusted_keys[0]: file not found" in capsys.readouterr().err


def test_config_schema_is_json_with_descriptions(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config-schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"field {name} lacks a description"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("edge-agent ")


def test_unwritable_state_dir_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    path = tmp_path / "a.yaml"
    path.write_text(MINIMAL.format(state=blocker / "state"))
    assert main(["run", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert "state_dir: cannot create" in err and "Traceback" not in err
