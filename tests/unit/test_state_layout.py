"""The single-model state directory moves into the model's folder once, and an upgrade a
crash interrupted is finished at the next start."""

from __future__ import annotations

import json
import os
from pathlib import Path

from agent.config import AgentConfig, parse_config
from agent.models.layout import old_layout, shorthand_dir_name
from agent.service.graph import unit_dir_names, upgrade_state

SHA = "a" * 64


def old_state(state: Path) -> None:
    """Files of release 0.x: the store at STATE/models/, label table and monitor state on top."""
    (state / "models" / SHA).mkdir(parents=True)
    (state / "models" / SHA / "manifest.json").write_text(json.dumps({"name": "quality"}))
    (state / "models" / "state.json").write_text(json.dumps({"active": SHA, "history": []}))
    (state / "labels.db").write_bytes(b"db")
    (state / "labels.db-wal").write_bytes(b"wal")
    (state / "monitor-state.npz").write_bytes(b"npz")
    (state / "audit.log").write_text("{}\n")


def config(state: Path) -> AgentConfig:
    return parse_config({"gateway_id": "gw", "state_dir": str(state), "model": {},
                         "sources": [{"type": "opcua", "name": "p", "endpoint": "opc.tcp://h:1",
                                      "nodes": [{"tag": "t", "node_id": "ns=2;i=1"}]}]})


def test_upgrade_moves_each_file_once(tmp_path: Path) -> None:
    old_state(tmp_path)
    cfg = config(tmp_path)
    assert unit_dir_names(cfg) == ["quality"]
    assert upgrade_state(cfg, ["quality"]) == "quality"
    folder = tmp_path / "models" / "quality"
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [SHA, "state.json", "labels.db", "labels.db-wal", "monitor-state.npz"])
    assert (tmp_path / "audit.log").is_file() and not old_layout(tmp_path)
    assert upgrade_state(cfg, ["quality"]) is None
    assert shorthand_dir_name(tmp_path, None) == "quality"  # the next start finds the folder


def test_an_interrupted_upgrade_is_finished(tmp_path: Path) -> None:
    old_state(tmp_path)
    work = tmp_path / "models" / ".upgrade-quality"
    work.mkdir()
    os.replace(tmp_path / "models" / "state.json", work / "state.json")  # the crash came here
    os.replace(tmp_path / "models" / SHA, work / SHA)
    cfg = config(tmp_path)
    names = unit_dir_names(cfg)
    assert names == ["quality"]
    assert upgrade_state(cfg, names) == "quality"
    folder = tmp_path / "models" / "quality"
    assert (folder / "state.json").is_file() and (folder / SHA / "manifest.json").is_file()
    assert (folder / "labels.db").read_bytes() == b"db" and not work.exists()
