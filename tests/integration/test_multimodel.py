"""Several models on one gateway (issue 14): real ONNX models, a real MQTT broker feeding one
JSON message per part, the repository's hub over loopback HTTP (per (gateway, model)), and a
hub's gateway API serving documents of the multi-model contract exactly as written
(tests/helpers/desired_hub.py: the legacy top level of an old hub, a bundle of the wrong name).

Each model has its own version from the hub, its own shadow, its own rollback and its own
alarms; a slow or failing model never holds up another; `models:` and the `model:` shorthand
run alike; a single-model state directory upgrades; a shutdown under load loses nothing."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import numpy as np
import pytest
from prometheus_client import generate_latest
from sqlalchemy import create_engine

from agent.aio.links import links
from agent.demo.sim.process import COUNTER_TAG, NOMINAL, PROCESS_TAGS
from agent.service.agent import Agent
from agent.store.codec import decode_readings
from agent.store.outbox import Outbox
from hub.registry import publish
from hub.server import HubServer
from hub.storage import add_admin_token, add_gateway, migrate
from tests.helpers.desired_hub import DesiredHub, bundle_ref
from tests.helpers.multimodel import holdout_rows, line_source, own_inputs_model, publish_parts, renamed
from tests.helpers.running import base_config, collect_json, http_get, running_agent, wait_for
from tests.helpers.versions import fragile_model

PREFIX = "b_"  # the second model's tags


@pytest.fixture(scope="module")
def bundles(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """quality 1.0.0/1.1.0 (the trained model renamed), cycle 1.0.0/1.1.0 (a second model on its
    own tags), cycle 2.0.0 (passes its self-test, fails on line data)."""
    root = tmp_path_factory.mktemp("multimodel")
    cycle = own_inputs_model(root, trained, "cycle", PREFIX)
    fragile = fragile_model(root, trained, "2.0.0")
    return {"quality": renamed(trained["bundle"], "quality", "1.0.0", root / "q1.0", trained["key"]),
            "quality-1.1": renamed(trained["bundle"], "quality", "1.1.0", root / "q1.1", trained["key"]),
            "cycle": cycle,
            "cycle-1.1": renamed(cycle, "cycle", "1.1.0", root / "c1.1", trained["key"]),
            "cycle-2.0": renamed(fragile, "cycle", "2.0.0", root / "c2.0", trained["key"])}


def parts(trained: dict[str, Path], n: int, shift: float = 0.0, start: int = 0) -> list[dict[str, float]]:
    """n parts from the holdout: the quality model's tags (shifted by ``shift`` spreads) and the
    cycle model's tags (never shifted)."""
    names, rows = holdout_rows(trained)
    out = []
    for i in range(n):
        row = rows[(start + i) % len(rows)]
        values = {t: float(v) + shift * NOMINAL[t][1] for t, v in zip(names, row, strict=True)}
        values.update({PREFIX + t: float(v) for t, v in zip(names, row, strict=True)})
        out.append(values)
    return out


def two_models(tmp_path: Path, broker: Any, trained: dict[str, Path], bundles: dict[str, Path],
               **extra: Any) -> dict[str, Any]:
    keys = [str(trained["pub"])]
    tags = [*PROCESS_TAGS, *(PREFIX + t for t in PROCESS_TAGS)]
    return base_config(
        tmp_path / "state", [line_source(broker.port, tags)],
        features={"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 600},
        models=[{"name": "quality", "bundle": str(bundles["quality"]), "trusted_keys": keys},
                {"name": "cycle", "bundle": str(bundles["cycle"]), "trusted_keys": keys,
                 "rollback": {"watch_s": 600, "max_inference_errors": 3}}],
        **extra)


def unit(agent: Agent, name: str) -> Any:
    return next(u for u in agent.units if u.name == name)


def version(agent: Agent, name: str) -> str | None:
    model = unit(agent, name).model
    return model.version if model is not None else None


def with_hub(cfg: dict[str, Any], url: str, token: str) -> dict[str, Any]:
    return {**cfg, "hub": {"url": url, "token": token, "poll_interval_s": 0.2,
                           "report_interval_s": 0.2, "reconnect": {"initial_s": 0.1, "max_s": 0.5}}}


def desired(models: dict[str, dict[str, Any]], top: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"gateway_id": "test-gw", "models": models, "model": None, "shadow": None,
            "deployment": None, "config": None, **(top or {})}


async def connected(agent: Agent) -> None:
    await wait_for(lambda: agent.sources[0].status.connected, what="line source connected")


# -- config: `models:` and `model:` run alike ------------------------------------------------------
async def test_models_list_and_shorthand_run_alike(tmp_path: Path, broker: Any,
                                                   trained: dict[str, Path]) -> None:
    model = {"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]}
    seen = []
    for kind, section in (("shorthand", {"model": model}),
                          ("list", {"models": [{"name": "moulding-nok", **model}]})):
        cfg = base_config(tmp_path / kind, [line_source(broker.port, PROCESS_TAGS)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 600},
                          **section)
        async with running_agent(cfg) as agent:
            await connected(agent)
            await publish_parts(broker.port, 1, parts(trained, 20))
            await wait_for(lambda a=agent: a.predictions >= 19, what=f"{kind}: predictions")
            doc = agent.snapshot()
            report = agent.hub_report()
            seen.append({"names": [u.name for u in agent.units], "models": sorted(doc["models"]),
                         "active": doc["model"]["version"], "predictions": agent.predictions,
                         "report_models": [m["name"] for m in report["models"]],
                         "store": agent.units[0].store.root.relative_to(tmp_path / kind)})
    assert seen[0] == seen[1]
    assert seen[0]["names"] == ["moulding-nok"] and seen[0]["store"] == Path("models/moulding-nok")


# -- isolation: a slow or failing model holds up nobody ----------------------------------------------
class Gated:
    """The runtime of a real model, held at a gate: its inference is as slow as the test says."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.gate, self.entered = inner, threading.Event(), threading.Event()

    def predict(self, x: np.ndarray) -> Any:
        self.entered.set()
        self.gate.wait(60)
        return self.inner.predict(x)


async def test_slow_model_never_delays_another(tmp_path: Path, broker: Any, trained: dict[str, Path],
                                               bundles: dict[str, Path]) -> None:
    async with running_agent(two_models(tmp_path, broker, trained, bundles)) as agent:
        await connected(agent)
        slow = unit(agent, "cycle")
        assert slow.model is not None
        gated = Gated(slow.model.runtime)
        slow.model.runtime = gated
        try:
            await publish_parts(broker.port, 1, parts(trained, 40))
            await wait_for(lambda: unit(agent, "quality").predictions >= 39, what="quality's predictions")
            # the whole line was scored by quality while cycle is still in its first batch
            assert gated.entered.is_set() and slow.predictions == 0
        finally:
            gated.gate.set()
        await wait_for(lambda: slow.predictions >= 39, what="cycle catches up: its channel kept all")
        assert slow.channel.dropped == 0 and unit(agent, "quality").inference_errors == 0
        assert agent.health_server is not None  # per-model series carry the model's name
        metrics = generate_latest(agent.health_server.registry).decode()
        for name in ("quality", "cycle"):
            assert f'edge_predictions_total{{model="{name}"}} ' in metrics
            assert f'edge_unknown_labels_total{{model="{name}"}} 0.0' in metrics
            assert f'edge_channel_dropped_total{{channel="readings:{name}"}} 0.0' in metrics
        code, body = await http_get(agent.health_server.port, "/readyz")
        ready = json.loads(body)
        assert code == 200 and set(ready["models"]) == {"quality", "cycle"}
        assert ready["models"]["cycle"]["ready"] and ready["models"]["cycle"]["version"] == "1.0.0"


# -- the hub: each model its own version, shadow and rollback --------------------------------------
async def test_each_model_gets_its_own_version_and_shadow(tmp_path: Path, broker: Any,
                                                          trained: dict[str, Path],
                                                          bundles: dict[str, Path]) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    refs = {k: bundle_ref(v, trained["pub"], archives) for k, v in bundles.items()}
    with DesiredHub(archives) as hub:
        cfg = with_hub(two_models(tmp_path, broker, trained, bundles), hub.url, hub.token)
        async with running_agent(cfg) as agent:
            # a canary of quality (the hub put this gateway in it): cycle is not touched
            cycle_history = list(unit(agent, "cycle").store.state.history)
            hub.set_desired(desired({"quality": {"model": refs["quality-1.1"], "shadow": None,
                                                 "deployment": {"id": 1, "strategy": "canary"}}}))
            await wait_for(lambda: version(agent, "quality") == "1.1.0", what="quality 1.1.0")
            assert version(agent, "cycle") == "1.0.0"  # absent from `models`: keeps what it runs
            assert unit(agent, "cycle").store.state.history == cycle_history
            quality_report = unit(agent, "quality").lifecycle.report()
            assert "canary" in quality_report["active"]["reason"]

            # a shadow of cycle: quality runs on without one
            shadow = {**refs["cycle-1.1"], "min_labels": 5, "watch_s": 60, "deployment": 2}
            hub.set_desired(desired({"quality": {"model": refs["quality-1.1"]},
                                     "cycle": {"model": refs["cycle"], "shadow": shadow}}))
            cycle_lc, quality_lc = unit(agent, "cycle").lifecycle, unit(agent, "quality").lifecycle
            assert cycle_lc is not None and quality_lc is not None
            await wait_for(lambda: cycle_lc.shadow is not None, what="cycle's shadow")
            assert quality_lc.shadow is None and version(agent, "quality") == "1.1.0"

            def reported() -> bool:
                r = hub.last_report()
                return bool(r and r.get("models") and [m["name"] for m in r["models"]] == [
                    "quality", "cycle"] and (r["models"][1].get("shadow") or {}).get("version") == "1.1.0")

            await wait_for(reported, what="a report with both models")
            report = hub.last_report()
            assert report is not None
            by_name = {m["name"]: m for m in report["models"]}
            assert by_name["quality"]["active"]["version"] == "1.1.0"
            assert by_name["quality"]["shadow"] is None
            assert by_name["cycle"]["active"]["version"] == "1.0.0"
            assert report["active"]["name"] == "quality"  # the top level: the first model

            # an old hub (no `models`): its top level names the model it speaks for
            hub.set_desired({"model": refs["cycle-1.1"], "shadow": None, "deployment": None,
                             "config": None})
            await wait_for(lambda: version(agent, "cycle") == "1.1.0", what="cycle 1.1.0 from an old hub")
            assert version(agent, "quality") == "1.1.0"

            # a bundle of another model is refused for a slot, with both names
            hub.set_desired(desired({"cycle": {"model": refs["quality"]}}))
            await wait_for(lambda: any("named 'quality'" in r["reason"] for r in
                                       (hub.last_report() or {}).get("models", [{}])[-1].get("rejected", [])),
                           what="the refusal in the report")
            assert version(agent, "cycle") == "1.1.0"


async def test_failing_model_is_rolled_back_alone(tmp_path: Path, broker: Any, trained: dict[str, Path],
                                                 bundles: dict[str, Path]) -> None:
    archives = tmp_path / "archives"
    archives.mkdir()
    bad = bundle_ref(bundles["cycle-2.0"], trained["pub"], archives)
    with DesiredHub(archives) as hub:
        cfg = with_hub(two_models(tmp_path, broker, trained, bundles), hub.url, hub.token)
        async with running_agent(cfg) as agent:
            await connected(agent)
            hub.set_desired(desired({"cycle": {"model": bad, "deployment": {"id": 3}}}))
            await wait_for(lambda: version(agent, "cycle") == "2.0.0", what="cycle 2.0.0 active")
            counter = 1
            for _ in range(20):  # until the failing version is rolled back
                counter = await publish_parts(broker.port, counter, parts(trained, 10, start=counter))
                if version(agent, "cycle") == "1.0.0":
                    break
                await asyncio.sleep(0.2)
            await wait_for(lambda: version(agent, "cycle") == "1.0.0", what="cycle rolled back")
            quality = unit(agent, "quality")
            assert quality.lifecycle is not None and quality.lifecycle.store.state.rejected == {}
            assert version(agent, "quality") == "1.0.0" and quality.inference_errors == 0
            cycle_lc = unit(agent, "cycle").lifecycle
            assert cycle_lc is not None and bad["sha256"] in cycle_lc.store.state.rejected
            await wait_for(lambda: quality.predictions >= counter - 2, what="quality scored every part")


async def test_two_models_with_the_real_hub(tmp_path: Path, broker: Any, trained: dict[str, Path],
                                           bundles: dict[str, Path]) -> None:
    """The hub of this repository (per (gateway, model) since issue 14) over loopback HTTP: each
    model gets its own version, a canary of one leaves the other's, the fleet table has both."""
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    data = tmp_path / "hub-data"
    for key in ("quality", "quality-1.1", "cycle", "cycle-1.1"):
        publish(engine, data, bundles[key], [trained["pub"]])
    server = HubServer(engine, data, evaluate_interval_s=0.2)
    server.start()
    try:
        token = add_gateway(engine, "test-gw", group="press")
        admin = {"Authorization": f"Bearer {add_admin_token(engine, 'alice')}"}

        def deploy(model: str, version: str, **more: Any) -> None:
            with httpx.Client(base_url=server.url, timeout=10) as c:
                r = c.post("/api/v1/deployments", headers=admin,
                           json={"model": model, "version": version, "to": "test-gw", **more})
                assert r.status_code == 201, r.text

        keys = [str(trained["pub"])]  # hub-managed: the versions come from the hub alone
        tags = [*PROCESS_TAGS, *(PREFIX + t for t in PROCESS_TAGS)]
        cfg = with_hub(base_config(
            tmp_path / "state", [line_source(broker.port, tags)],
            features={"mode": "trigger", "trigger_tag": COUNTER_TAG, "max_age_s": 600},
            models=[{"name": "quality", "trusted_keys": keys},
                    {"name": "cycle", "trusted_keys": keys}]), server.url, token)
        deploy("quality", "1.0.0")
        deploy("cycle", "1.0.0")
        async with running_agent(cfg) as agent:
            await wait_for(lambda: version(agent, "quality") == version(agent, "cycle") == "1.0.0", 30,
                           "each model's version from the hub")
            cycle_history = list(unit(agent, "cycle").store.state.history)
            deploy("quality", "1.1.0", strategy="canary", canary_size=1, watch_s=3600)
            await wait_for(lambda: version(agent, "quality") == "1.1.0", 30, "quality's canary")
            assert version(agent, "cycle") == "1.0.0"
            assert unit(agent, "cycle").store.state.history == cycle_history

            def fleet() -> dict[str, Any]:
                with httpx.Client(base_url=server.url, timeout=10) as c:
                    rows = c.get("/api/v1/gateways", headers=admin).json()
                row = next(r for r in rows if "test-gw" in (r.get("id"), r.get("gateway_id")))
                return {m["name"]: m.get("version") for m in row.get("models") or []}

            await wait_for(lambda: fleet() == {"quality": "1.1.0", "cycle": "1.0.0"}, 30,
                           "the fleet table: one row per (gateway, model)")
    finally:
        server.stop()
        engine.dispose()


# -- monitoring: an alarm belongs to its model --------------------------------------------------------
async def test_drift_alarm_is_attributed_to_its_model(tmp_path: Path, broker: Any,
                                                      trained: dict[str, Path],
                                                      bundles: dict[str, Path]) -> None:
    async with running_agent(two_models(tmp_path, broker, trained, bundles)) as agent:
        await connected(agent)
        counter = await publish_parts(broker.port, 1, parts(trained, 50))
        for _ in range(30):  # quality's inputs move by 4 spreads; cycle's stay put
            if any(e.level == "alarm" for e in agent.events):
                break
            counter = await publish_parts(broker.port, counter, parts(trained, 40, shift=4.0, start=counter))
            await asyncio.sleep(0.3)
        await wait_for(lambda: any(e.level == "alarm" for e in agent.events), what="a drift alarm")
        assert {e.model for e in agent.events} == {"quality"}
        assert unit(agent, "quality").health() == "alarm" and unit(agent, "cycle").health() == "ok"
        status = agent.snapshot()
        assert status["models"]["cycle"]["health"] == "ok"
        assert status["models"]["quality"]["monitor"]["incident_state"] != "ok"


# -- the state directory of the single-model release ------------------------------------------------
def old_release_state(state: Path, trained: dict[str, Path]) -> dict[str, Any]:
    """The layout release 0.x (main at a0675d5, single model) writes: STATE/models/<sha256>/
    and STATE/models/state.json (ModelStore), STATE/labels.db (LabelJoin), STATE/monitor-state.npz
    (ModelWatch), STATE/audit.log and STATE/outbox.db. Written with today's classes pointed at
    the old places (ModelStore without a name; ModelWatch given STATE itself)."""
    from agent.config import ModelConfig, MonitoringConfig
    from agent.inference.batches import SampleBatch
    from agent.inference.model import load_model
    from agent.models.store import ModelStore
    from agent.monitor.watch import ModelWatch

    store = ModelStore(state)
    bundle = store.install(trained["bundle"], [trained["pub"]], False)
    store.state.active = bundle.sha256
    store.note(bundle.sha256, "moulding-nok", "1.0.0", "activated", "configured in model.bundle")
    store.save()
    model = load_model(ModelConfig(trusted_keys=[trained["pub"]]), store.path(bundle.sha256),
                       state / "staging")
    watch = ModelWatch(model, MonitoringConfig(), state)
    _, rows = holdout_rows(trained)
    batch = SampleBatch([str(i) for i in range(30)], np.full(30, time.time()),
                        rows[:30].astype(np.float32))
    predictions, out = model.predict(batch)
    watch.on_batch(batch, predictions, out)
    watch.flush()
    figures = {"sha256": bundle.sha256, "samples": watch.monitor.samples,
               "pending": watch.labels.figures()}
    watch.close()
    return figures


async def test_old_state_dir_upgrades(tmp_path: Path, broker: Any, trained: dict[str, Path]) -> None:
    state = tmp_path / "state"
    before = old_release_state(state, trained)
    assert (state / "labels.db").is_file() and (state / "monitor-state.npz").is_file()
    # hub-managed as far as the config says (no bundle): the model must come from the old state
    cfg = base_config(state, [line_source(broker.port, PROCESS_TAGS)],
                      features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                      model={"trusted_keys": [str(trained["pub"])]})
    async with running_agent(cfg) as agent:
        assert agent.model is not None and agent.model.bundle.sha256 == before["sha256"]
        assert agent.units[0].name == "moulding-nok"
        watch = agent.watch
        assert watch is not None and watch.restored and watch.monitor.samples == before["samples"]
        assert watch.labels.figures()["pending"] == before["pending"]["pending"] == 30
    folder = state / "models" / "moulding-nok"
    assert (folder / "state.json").is_file() and (folder / before["sha256"] / "manifest.json").is_file()
    assert (folder / "labels.db").is_file() and (folder / "monitor-state.npz").is_file()
    assert not (state / "labels.db").exists() and not (state / "models" / "state.json").exists()
    assert (state / "audit.log").is_file() and (state / "outbox.db").is_file()  # shared, at the top
    audit = (state / "audit.log").read_text()
    assert "state_upgraded" in audit
    async with running_agent(cfg) as again:  # a second start finds the new layout: nothing moves
        assert again.model is not None and again.model.bundle.sha256 == before["sha256"]


# -- shutdown under load: every stage drains ------------------------------------------------------------
async def test_shutdown_under_load_loses_nothing(tmp_path: Path, broker: Any, trained: dict[str, Path],
                                                 bundles: dict[str, Path]) -> None:
    cfg = two_models(tmp_path, broker, trained, bundles)
    cfg["outbox"] = {"flush_interval_s": 5.0}  # plenty waits in the recorder when the stop comes
    agent = Agent.from_raw(cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    await wait_for(lambda: agent.ready.is_set(), what="ready")
    await connected(agent)
    feeding = asyncio.create_task(publish_parts(broker.port, 1, parts(trained, 3000)))
    await wait_for(lambda: agent.offered >= 2000, what="readings flowing")
    stop.set()  # mid-stream: parts still arrive, channels hold readings, the recorder holds more
    await asyncio.wait_for(task, 60)
    feeding.cancel()
    box = Outbox(Path(cfg["state_dir"]) / "outbox.db", 1 << 30)
    records = box.peek(100_000, 1 << 30)
    readings = [r for rec in records if rec.kind == "readings" for r in decode_readings(rec.payload)]
    predicted = sum(rec.items for rec in records if rec.kind == "predictions")
    box.close()
    assert len(readings) == agent.offered  # every reading read went to the outbox
    # the first counter value is the state at connection, not a part: every later one is a part
    new_parts = sum(1 for r in readings if r.tag == COUNTER_TAG) - 1
    assert new_parts > 100
    for u in agent.units:  # each model scored every part it was offered, none dropped
        assert u.channel.dropped == 0
        assert u.builder is not None and u.builder.samples + u.builder.invalid_total == new_parts
        assert u.predictions == u.builder.samples
    assert predicted == sum(u.predictions for u in agent.units)
    status = json.loads((Path(cfg["state_dir"]) / "status.json").read_text())
    assert status["readings_recorded"] == status["readings_offered"] == agent.offered


async def test_bundle_of_another_name_is_refused_for_a_slot(tmp_path: Path, broker: Any,
                                                           trained: dict[str, Path]) -> None:
    cfg = base_config(tmp_path / "state", [line_source(broker.port, PROCESS_TAGS)],
                      models=[{"name": "quality", "bundle": str(trained["bundle"]),
                               "trusted_keys": [str(trained["pub"])]}])
    async with running_agent(cfg) as agent:  # runs on, without inference, and says why
        assert agent.model is None and agent.units[0].name == "quality"
        error = agent.units[0].model_error or ""
        assert "models[quality]" in error and "'moulding-nok'" in error
        assert agent.health_server is not None
        code, body = await http_get(agent.health_server.port, "/readyz")
        assert code == 503 and "model quality: no model" in body


async def test_topics_and_label_sources_per_model(tmp_path: Path, broker: Any, trained: dict[str, Path],
                                                  bundles: dict[str, Path]) -> None:
    mqtt = {"host": "127.0.0.1", "port": broker.port}
    cfg = two_models(tmp_path, broker, trained, bundles, outputs={"mqtt": {"broker": mqtt}},
                     labels={"type": "mqtt", "broker": mqtt, "topic": "qc/quality"})
    cfg["models"][1]["outputs"] = {"topic": "cycle/{gateway_id}/{version}"}
    cfg["models"][1]["labels"] = {"type": "mqtt", "broker": mqtt, "topic": "qc/cycle"}
    received: list[dict[str, Any]] = []
    listener = asyncio.create_task(collect_json(broker.port, "#", received))
    try:
        async with running_agent(cfg) as agent:
            await connected(agent)
            await wait_for(lambda: all(lst.status.connected for lst in agent.label_listeners.values()),
                           what="both label sources")
            assert {link.name for link in links(agent) if link.role == "labels"} == {"labels", "labels-cycle"}
            await publish_parts(broker.port, 1, parts(trained, 11))
            await wait_for(lambda: sum(1 for m in received if m["topic"].startswith("cycle/")) >= 10,
                           what="cycle's predictions on its own topic")
            await wait_for(lambda: any(m["topic"] == "edge/test-gw/quality/predictions" for m in received),
                           what="quality's on the default topic")
            assert {m["model"] for m in received if m["topic"].startswith("cycle/")} == {"cycle"}
            assert received_topic(received, "cycle") == "cycle/test-gw/1.0.0"
            async with aiomqtt.Client("127.0.0.1", broker.port) as client:
                await client.publish("qc/quality", json.dumps({"serial": "3", "result": "OK"}), qos=1)
                await client.publish("qc/cycle", json.dumps({"serial": "4", "result": "NOK"}), qos=1)
            quality, cycle = unit(agent, "quality"), unit(agent, "cycle")
            await wait_for(lambda: quality.labels_received == 1 and cycle.labels_received == 1,
                           what="each label reaches its own model only")
            pending = agent.recorder.pending.labels
            assert {(d["model"], d["id"]) for d in pending} == {("quality", "3"), ("cycle", "4")}
    finally:
        listener.cancel()


def received_topic(received: list[dict[str, Any]], model: str) -> str:
    return str(next(m["topic"] for m in received if m.get("model") == model))
