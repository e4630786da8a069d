"""The `models:` list and the `model:` shorthand: one normalisation, clear refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.cli import main
from agent.config import parse_config
from agent.errors import ConfigError

SOURCE = {"type": "opcua", "name": "plc", "endpoint": "opc.tcp://127.0.0.1:4840",
          "nodes": [{"tag": "t1", "node_id": "ns=2;i=1001"}]}


def config(**extra: Any) -> dict[str, Any]:
    return {"gateway_id": "gw-1", "state_dir": "/tmp/x", "sources": [SOURCE], **extra}


def problems(doc: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        parse_config(doc)
    return "\n".join(caught.value.problems)


def test_shorthand_is_a_one_entry_list_named_by_its_bundle() -> None:
    short = parse_config(config(model={"batch_max": 8, "keep_versions": 4}))
    listed = parse_config(config(models=[{"name": "quality", "batch_max": 8, "keep_versions": 4}]))
    assert len(short.models) == 1 and short.models[0].shorthand and short.models[0].name is None
    assert not listed.models[0].shorthand
    assert short.models[0].model_dump(exclude={"name"}) == listed.models[0].model_dump(exclude={"name"})
    assert short.model is short.models[0]  # the first model, for one-model callers
    none = parse_config(config())  # neither: one hub-managed model, as `model:` with defaults was
    assert len(none.models) == 1 and none.models[0].bundle is None


def test_both_keys_are_refused_naming_both(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = problems(config(model={}, models=[{"name": "a"}]))
    assert "'model'" in text and "'models'" in text
    path = tmp_path / "agent.yaml"
    path.write_text("gateway_id: gw\nsources: [{type: opcua, name: p, endpoint: 'opc.tcp://h:1', "
                    "nodes: [{tag: t, node_id: 'ns=2;i=1'}]}]\nmodel: {}\nmodels: [{name: a}]\n")
    assert main(["check-config", "--schema-only", str(path)]) == 2
    err = capsys.readouterr().err
    assert "'model'" in err and "'models'" in err and "Traceback" not in err


@pytest.mark.parametrize(("models", "expected"), [
    ([{"name": "a"}, {"name": "a"}], "names must be unique, repeated: a"),
    ([{"bundle": "/x"}], "models[0].name: required"),
    ([{"name": "../etc"}], "models[0].name"),
    ([{"name": "a", "batch_max": 0}], "models[0].batch_max"),
    ([], "models"),
    ([{"name": f"m{i}"} for i in range(33)], "models"),
])
def test_bad_models_lists_name_the_place(models: list[Any], expected: str) -> None:
    assert expected in problems(config(models=models))


def test_shorthand_errors_point_at_what_the_user_wrote() -> None:
    text = problems(config(model={"batch_max": 0}))
    assert text.startswith("model.batch_max:"), text
    assert "takes its name from the bundle" in problems(config(model={"name": "q"}))


def test_per_model_sections_default_to_the_top_level() -> None:
    cfg = parse_config(config(
        features={"mode": "periodic", "period_s": 2.0},
        models=[{"name": "a"},
                {"name": "b", "features": {"mode": "trigger", "trigger_tag": "t1"},
                 "monitoring": {"enabled": False}, "outputs": {"topic": "x/{model}"}}]))
    a, b = cfg.models
    assert cfg.features_of(a).period_s == 2.0 and cfg.features_of(b).mode == "trigger"
    assert cfg.monitoring_of(a).enabled and not cfg.monitoring_of(b).enabled
    assert b.outputs.topic == "x/{model}" and a.outputs.topic is None


def test_a_dumped_config_validates_again() -> None:
    for doc in (config(model={"batch_max": 8}), config(models=[{"name": "a"}, {"name": "b"}])):
        cfg = parse_config(doc)
        again = parse_config(cfg.model_dump(mode="json"))
        assert again == cfg
    assert "models[1].name: required" in problems(config(models=[{"name": "a"}, {"name": None}]))


def test_replay_reads_the_model_it_is_asked_for(tmp_path: Path) -> None:
    from agent.monitor.replay import load_replay_config

    path = tmp_path / "agent.yaml"
    path.write_text(json.dumps(config(
        monitoring={"label_ttl_s": 60},
        models=[{"name": "a", "bundle": "/b/a"},
                {"name": "b", "bundle": "/b/b", "monitoring": {"label_ttl_s": 99}}])))
    replay = load_replay_config(path, "b")
    assert replay.model.bundle == Path("/b/b") and replay.monitoring.label_ttl_s == 99
    assert load_replay_config(path, "a").monitoring.label_ttl_s == 60  # the top level's
    with pytest.raises(ConfigError, match="runs 2 models"):
        load_replay_config(path)
    with pytest.raises(ConfigError, match="no model named 'c'"):
        load_replay_config(path, "c")


def wb(*nodes: str, source: str = "plc") -> dict[str, Any]:
    return {"source": source, "nodes": {f"out{i}": n for i, n in enumerate(nodes)}}


def test_each_model_may_write_back_to_its_own_nodes() -> None:
    cfg = parse_config(config(models=[{"name": "a", "outputs": {"opcua_writeback": wb("ns=2;s=A")}},
                                      {"name": "b", "outputs": {"opcua_writeback": wb("ns=2;s=B")}}]))
    assert [m.outputs.opcua_writeback.nodes for m in cfg.models if m.outputs.opcua_writeback] == [
        {"out0": "ns=2;s=A"}, {"out0": "ns=2;s=B"}]


@pytest.mark.parametrize(("doc", "expected"), [
    ({"models": [{"name": "a", "outputs": {"opcua_writeback": wb("ns=2;s=A")}},
                 {"name": "b", "outputs": {"opcua_writeback": wb("ns=2;s=X", "ns=2;s=A")}}]},
     "models[1].outputs.opcua_writeback: node ns=2;s=A of source plc is already written by "
     "models[0].outputs.opcua_writeback"),
    ({"outputs": {"opcua_writeback": wb("ns=2;s=A")},
      "models": [{"name": "a"}, {"name": "b", "outputs": {"opcua_writeback": wb("ns=2;s=A")}}]},
     "already written by outputs.opcua_writeback"),
    ({"outputs": {"opcua_writeback": wb("ns=2;s=A")},
      "models": [{"name": "a", "outputs": {"opcua_writeback": wb("ns=2;s=B")}}]},
     "keep one of the two"),
    ({"models": [{"name": "a"}, {"name": "b", "outputs": {"opcua_writeback": wb("ns=2;s=B", source="mes")}}]},
     "models[1].outputs.opcua_writeback.source 'mes' is not an opcua source"),
])
def test_write_backs_that_would_fight_are_refused(doc: dict[str, Any], expected: str) -> None:
    assert expected in problems(config(**doc))


def test_a_model_can_opt_out_of_the_top_level_labels(tmp_path: Path) -> None:
    from agent.service.agent import Agent
    from agent.types import Label

    qc = {"type": "mqtt", "broker": {"host": "127.0.0.1"}, "topic": "qc/#"}
    cfg = parse_config({**config(labels=qc, models=[
        {"name": "quality"}, {"name": "cycle-time", "labels": {"type": "none"}}]),
        "state_dir": str(tmp_path)})
    assert cfg.labels_of(cfg.models[0]) == cfg.labels and cfg.labels_of(cfg.models[1]) is None
    agent = Agent(cfg)
    assert list(agent.label_listeners) == ["labels"]
    agent.label_listeners["labels"]._deliver(Label("17", "NOK", 1.7e9))
    assert [u.labels_received for u in agent.units] == [1, 0]  # the QC verdict reaches quality only
    assert "labels" in problems(config(models=[{"name": "a", "labels": {"type": "never"}}]))
