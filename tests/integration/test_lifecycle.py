"""Model versions from the hub to running agents, over loopback HTTP: sync, refusal of spoiled
bundles, automatic rollback of a worse version, canary and shadow rollouts judged by the hub."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.line import SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from agent.models.bundle import sha256_file, sign_bundle
from hub.registry import publish
from hub.rollouts import RolloutPolicy, deploy
from hub.server import HubServer
from hub.storage import AgentAudit, Deployment, HistoryEntry, ModelVersion, Telemetry, add_gateway
from tests.helpers.hubtest import active, agent_config, lifecycle_events, publish_unchecked, rejected_at_hub
from tests.helpers.running import base_config, collect_json, http_get, opcua_source, running_agent, wait_for
from tests.helpers.versions import tar_of, variant

MODEL = "moulding-nok"


def publish_all(engine: Engine, hub: HubServer, trained: dict[str, Path], *bundles: Path) -> None:
    """Bundles for the gateways to judge: 9.0.0's self-test fails, which today's hub refuses at
    publish, so it is registered as an older hub would have done."""
    for b in (trained["bundle"], *bundles):
        publish_unchecked(engine, hub.data, b, [trained["pub"]])


async def test_worse_version_is_rolled_back_within_its_watch(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    token = add_gateway(hub_db, "gw-a")
    publish_all(hub_db, hub, trained, versions["2.0.0"])
    deploy(hub_db, MODEL, "1.0.0", "gw-a", "immediate")
    cfg = agent_config(tmp_path / "a", line, hub, token, broker, "gw-a", trained, min_labels=20)
    async with running_agent(cfg) as agent:
        assert agent.model is None  # no bundle in the config: the hub provides it
        await wait_for(lambda: active(agent) == "1.0.0", 20, "1.0.0 from the hub")
        machine = asyncio.create_task(line.run_machine())
        await wait_for(lambda: agent.predictions >= 20, 20, "predictions")
        deploy(hub_db, MODEL, "2.0.0", "gw-a", "immediate")
        await wait_for(lambda: active(agent) == "2.0.0", 20, "2.0.0 activated")
        assert agent.lifecycle is not None and agent.lifecycle.incumbent is not None
        await wait_for(lambda: active(agent) == "1.0.0", 60, "automatic rollback to 1.0.0")
        machine.cancel()
        assert agent.store is not None
        reason = next(r["reason"] for r in agent.store.state.rejected.values() if r["version"] == "2.0.0")
        assert "expected cost" in reason and "labelled outcomes" in reason
        # no loop: the hub still wants 2.0.0 until it hears back; the agent stays on 1.0.0
        switches = agent.lifecycle.switches
        await asyncio.sleep(1.5)
        assert agent.lifecycle.switches == switches and active(agent) == "1.0.0"
        await wait_for(lambda: rejected_at_hub(hub_db, "gw-a", "2.0.0") is not None, 10, "report")
        await wait_for(lambda: "rolled_back" in lifecycle_events(hub_db, "gw-a"), 10, "uploaded")
    with Session(hub_db) as s:
        events = [(h.version, h.event) for h in s.scalars(select(HistoryEntry).order_by(HistoryEntry.id))]
        chain = [(a.seq, a.chain_ok, a.entry["action"]) for a in s.scalars(
            select(AgentAudit).where(AgentAudit.gateway_id == "gw-a").order_by(AgentAudit.seq))]
    # the gateway's audit entries reached the hub whole and in order, the chain checked there
    assert [seq for seq, _, _ in chain] == list(range(1, len(chain) + 1)) and all(ok for _, ok, _ in chain)
    assert "model_rolled_back" in {action for _, _, action in chain}
    assert ("2.0.0", "rejected") in events and events.index(("2.0.0", "activated")) < events.index(
        ("2.0.0", "rejected"))
    # the switches went through the outbox to the hub's telemetry
    events = lifecycle_events(hub_db, "gw-a")
    assert events.index("activated") < events.index("rolled_back")


def _plant(engine: Engine, hub: HubServer, version: str, archive: Path | None,
           truncate: bool = False) -> None:
    """Replace a published version's archive on the hub's disk (a compromised or damaged store)."""
    with Session(engine) as s, s.begin():
        mv = s.scalars(select(ModelVersion).where(ModelVersion.version == version)).one()
        stored = hub.data / "bundles" / f"{mv.sha256}.tar"
        if truncate:
            data = stored.read_bytes()
            stored.write_bytes(data[: len(data) // 2])
            return
        assert archive is not None
        shutil.copyfile(archive, stored)
        mv.archive_sha256, mv.size = sha256_file(stored), stored.stat().st_size


async def test_spoiled_bundles_are_refused_and_the_previous_version_keeps_running(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    token = add_gateway(hub_db, "gw-a")
    work = tmp_path / "spoil"
    work.mkdir()
    good = {v: variant(trained["bundle"], v, work / v, trained["key"])
            for v in ("1.2.0", "1.3.0", "1.4.0", "1.5.0")}
    publish_all(hub_db, hub, trained, *good.values(), versions["9.0.0"])
    # 1.2.0: the model file changed after signing
    bad = work / "model-file" / "b"
    shutil.copytree(good["1.2.0"], bad)
    with (bad / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    _plant(hub_db, hub, "1.2.0", tar_of(bad, work / "model-file.tar"))
    # 1.3.0: the manifest edited after signing
    bad = work / "manifest" / "b"
    shutil.copytree(good["1.3.0"], bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["metrics"]["accuracy"] = 0.999
    (bad / "manifest.json").write_text(json.dumps(manifest))
    _plant(hub_db, hub, "1.3.0", tar_of(bad, work / "manifest.tar"))
    # 1.4.0: signed by a key the gateway does not trust
    bad = work / "key" / "b"
    shutil.copytree(good["1.4.0"], bad)
    sign_bundle(bad, trained["other_key"])
    _plant(hub_db, hub, "1.4.0", tar_of(bad, work / "key.tar"))
    # 1.5.0: the stored archive cut in half
    _plant(hub_db, hub, "1.5.0", None, truncate=True)

    deploy(hub_db, MODEL, "1.0.0", "gw-a", "immediate")
    cfg = agent_config(tmp_path / "a", line, hub, token, broker, "gw-a", trained)
    expected = {"1.2.0": "does not match its sha256", "1.3.0": "signature does not match",
                "1.4.0": "signature does not match", "1.5.0": "incomplete",
                "9.0.0": "self-test failed"}
    async with running_agent(cfg) as agent:
        await wait_for(lambda: active(agent) == "1.0.0", 20, "1.0.0 from the hub")
        for version, why in expected.items():
            deploy(hub_db, MODEL, version, "gw-a", "immediate")
            await wait_for(lambda v=version: rejected_at_hub(hub_db, "gw-a", v) is not None, 20,
                           f"{version} refused and reported")
            reason = rejected_at_hub(hub_db, "gw-a", version) or ""
            assert why in reason, (version, reason)
            assert active(agent) == "1.0.0"  # the previous version never stopped
        assert agent.store is not None
        assert "9.0.0" not in {v["version"] for v in agent.store.state.history if v["event"] == "activated"}
        assert agent.inference_errors == 0


async def test_two_gateways_own_deployments_and_canary_rollouts(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    tokens = {gw: add_gateway(hub_db, gw, group="press") for gw in ("gw-a", "gw-b")}
    publish_all(hub_db, hub, trained, versions["1.1.0"], versions["9.0.0"])
    deploy(hub_db, MODEL, "1.0.0", "gw-a", "immediate")
    deploy(hub_db, MODEL, "1.1.0", "gw-b", "immediate")
    cfgs = {gw: agent_config(tmp_path / gw, line, hub, tokens[gw], broker, gw, trained, watch_s=0.5)
            for gw in tokens}
    async with running_agent(cfgs["gw-a"]) as a, running_agent(cfgs["gw-b"]) as b:
        await wait_for(lambda: active(a) == "1.0.0" and active(b) == "1.1.0", 20, "own deployments")
        async with httpx.AsyncClient(base_url=hub.url,
                                     headers={"Authorization": f"Bearer {tokens['gw-b']}"}) as c:
            assert (await c.get("/api/v1/gateways/gw-a/desired")).status_code == 403
            sha_b = (await c.get("/api/v1/gateways/gw-b/desired")).json()["model"]["sha256"]
            with Session(hub_db) as s:
                v1 = s.scalars(select(ModelVersion.sha256).where(ModelVersion.version == "1.0.0")).one()
            assert sha_b != v1 and (await c.get(f"/api/v1/bundles/{v1}")).status_code == 403

        deploy(hub_db, MODEL, "1.0.0", "group:press", "immediate")
        await wait_for(lambda: active(a) == "1.0.0" and active(b) == "1.0.0", 20, "group deploy")
        deploy(hub_db, MODEL, "1.1.0", "group:press", "canary", RolloutPolicy(canary_size=1, watch_s=1.5))
        await wait_for(lambda: active(a) == "1.1.0", 20, "the canary")
        assert active(b) == "1.0.0"  # the rest waits for the canary's watch
        await wait_for(lambda: active(b) == "1.1.0", 30, "promotion to the group")
        with Session(hub_db) as s:
            dep = s.scalars(select(Deployment).where(Deployment.strategy == "canary")).one()
            assert dep.status == "active" and "without regression" in (dep.reason or "")

        deploy(hub_db, MODEL, "9.0.0", "group:press", "canary", RolloutPolicy(canary_size=1, watch_s=1.0))
        await wait_for(lambda: rejected_at_hub(hub_db, "gw-a", "9.0.0") is not None, 20, "canary refuses")
        with Session(hub_db) as s:
            await wait_for(lambda: s.scalars(select(Deployment.status).where(
                Deployment.version == "9.0.0")).one() == "rolled_back", 10, "rollout stopped")
            s.expire_all()
        await asyncio.sleep(1.0)
        assert active(a) == "1.1.0" and active(b) == "1.1.0"  # nobody runs the broken version
        assert not (tmp_path / "gw-b" / "models").joinpath("x").exists()
        assert b.store is not None and all(v["version"] != "9.0.0" for v in b.store.versions())


async def test_shadow_judged_by_the_hub(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    token = add_gateway(hub_db, "gw-a")
    publish_all(hub_db, hub, trained, versions["1.1.0"], versions["2.0.0"])
    deploy(hub_db, MODEL, "1.0.0", "gw-a", "immediate")
    cfg = agent_config(tmp_path / "a", line, hub, token, broker, "gw-a", trained, watch_s=0.5)
    cfg["outputs"] = {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port}}}
    published: list[dict[str, Any]] = []
    listener = asyncio.create_task(collect_json(broker.port, "edge/gw-a/#", published))
    async with running_agent(cfg) as agent:
        await wait_for(lambda: active(agent) == "1.0.0", 20, "1.0.0 from the hub")
        machine = asyncio.create_task(line.run_machine())
        shadow_policy = RolloutPolicy(min_labels=25, watch_s=300, margin=0.02)
        deploy(hub_db, MODEL, "2.0.0", "gw-a", "shadow", shadow_policy)
        assert agent.lifecycle is not None
        await wait_for(lambda: agent.lifecycle is not None and agent.lifecycle.shadow is not None, 20,
                       "shadow running")
        with Session(hub_db) as s:
            await wait_for(lambda: s.scalars(select(Deployment.status).where(
                Deployment.version == "2.0.0")).one() == "rejected", 60, "hub rejects the worse shadow")
        await wait_for(lambda: agent.lifecycle is not None and agent.lifecycle.shadow is None, 20,
                       "shadow withdrawn")
        assert active(agent) == "1.0.0"  # a shadow never decides

        deploy(hub_db, MODEL, "1.1.0", "gw-a", "shadow", shadow_policy)
        await wait_for(lambda: active(agent) == "1.1.0", 60, "hub promotes the equal shadow")
        machine.cancel()
        # shadow outputs were recorded (outbox -> hub telemetry), apart from the decisions
        await wait_for(lambda: telemetry_kinds(hub_db, "gw-a") >= {"predictions", "shadow_predictions"},
                       10, "shadow predictions uploaded")
    listener.cancel()
    versions_published = {p.get("version") for p in published if "sample_id" in p}
    assert "1.0.0" in versions_published and "2.0.0" not in versions_published  # shadows never decide
    with Session(hub_db) as s:
        reasons = {d.version: d.reason for d in s.scalars(select(Deployment))}
    assert "shadow worse" in (reasons["2.0.0"] or "") and "not worse" in (reasons["1.1.0"] or "")


def _accuracies(reason: str) -> tuple[float, float]:
    """(candidate, incumbent) accuracy from a decision's figures."""
    found = re.search(r", accuracy ([\d.]+) vs ([\d.]+)", reason)
    assert found, reason
    return float(found.group(1)), float(found.group(2))


async def test_missing_nok_parts_is_worse_even_when_more_accurate(
        hub: HubServer, hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    """7.1.0 is right more often than 7.0.0 but misses NOK parts 7.0.0 catches: the hub rejects it
    as a shadow, and the agent's watch rolls it back, both on expected cost per part."""
    token = add_gateway(hub_db, "gw-c")
    for b in (versions["7.0.0"], versions["7.1.0"]):
        publish(hub_db, hub.data, b, [trained["pub"]])
    deploy(hub_db, MODEL, "7.0.0", "gw-c", "immediate")
    # the watch judges cost only here: a latency blip of a loaded test machine must not decide
    cfg = agent_config(tmp_path / "c", line, hub, token, broker, "gw-c", trained, watch_s=120,
                       min_labels=150, latency_factor=1000.0)
    async with running_agent(cfg) as agent:
        await wait_for(lambda: active(agent) == "7.0.0", 20, "7.0.0 from the hub")
        machine = asyncio.create_task(line.run_machine())
        shadow_policy = RolloutPolicy(min_labels=150, watch_s=600, margin=0.02)
        deploy(hub_db, MODEL, "7.1.0", "gw-c", "shadow", shadow_policy)
        with Session(hub_db) as s:
            await wait_for(lambda: s.scalars(select(Deployment.status).where(
                Deployment.version == "7.1.0")).one() == "rejected", 60, "hub rejects the shadow")
            shadow_reason = s.scalars(select(Deployment.reason).where(Deployment.version == "7.1.0")).one()
        assert shadow_reason and "shadow worse: expected cost" in shadow_reason
        candidate, incumbent = _accuracies(shadow_reason)
        assert candidate > incumbent, shadow_reason  # accuracy alone would have promoted it

        deploy(hub_db, MODEL, "7.1.0", "gw-c", "immediate")
        await wait_for(lambda: active(agent) == "7.1.0", 20, "7.1.0 activated")
        await wait_for(lambda: active(agent) == "7.0.0", 60, "the watch rolls it back")
        machine.cancel()
        assert agent.store is not None
        reason = next(r["reason"] for r in agent.store.state.rejected.values() if r["version"] == "7.1.0")
    assert "expected cost" in reason, reason
    candidate, incumbent = _accuracies(reason)
    assert candidate > incumbent, reason


def telemetry_kinds(engine: Engine, gateway_id: str) -> set[str]:
    with Session(engine) as s:
        return set(s.scalars(select(Telemetry.kind).where(Telemetry.gateway_id == gateway_id).distinct()))


@pytest.mark.parametrize("version,why", [("3.0.0", "inference errors"), ("4.0.0", "p99 inference time")])
async def test_failing_or_slow_version_is_rolled_back(
        version: str, why: str, line: SimulatedLine, broker: Any, tmp_path: Path,
        trained: dict[str, Path], versions: dict[str, Path]) -> None:
    """No hub: the operator imports a version that fails on line data (but passes its
    self-test), or one that is far slower; the watch catches both, and no part goes unanswered."""
    from agent.cli import main

    cfg = base_config(tmp_path / "state", [opcua_source(line.options.opcua_port, line.ns)],
                      features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                      model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])],
                             "rollback": {"watch_s": 120, "latency_floor_ms": 0, "min_latency_batches": 20}})
    config_file = tmp_path / "agent.yaml"
    config_file.write_text(json.dumps(cfg))
    async with running_agent(cfg) as agent:
        machine = asyncio.create_task(line.run_machine())
        await wait_for(lambda: agent.predictions >= 10, 20, "predictions from 1.0.0")
        assert main(["models", "import", str(versions[version]), "--config", str(config_file)]) == 0
        await wait_for(lambda: active(agent) == version, 10, f"{version} active")
        await wait_for(lambda: active(agent) == "1.0.0", 30, "rolled back")
        machine.cancel()
        assert agent.store is not None
        reason = next(r["reason"] for r in agent.store.state.rejected.values() if r["version"] == version)
        assert why in reason
        assert agent.inference_errors == 0  # every part got an answer: the previous version gave it


async def test_hub_over_tls(hub_db: Engine, line: SimulatedLine, broker: Any, tmp_path: Path,
                            trained: dict[str, Path]) -> None:
    """The hub behind TLS: an agent that trusts its CA syncs and uploads; one that trusts
    another CA refuses to talk to it and says why."""
    from tests.helpers.pki import tls_ca_and_server

    (tmp_path / "pki").mkdir()
    (tmp_path / "other").mkdir()
    ca, cert, key = tls_ca_and_server(tmp_path / "pki")
    other_ca, _, _ = tls_ca_and_server(tmp_path / "other")
    server = HubServer(hub_db, tmp_path / "hub-data", keys=[trained["pub"]], tls=(cert, key))
    server.start()
    try:
        assert server.url.startswith("https://")
        tokens = {gw: add_gateway(hub_db, gw, group="press") for gw in ("gw-tls", "gw-wrong-ca")}
        publish(hub_db, server.data, trained["bundle"], [trained["pub"]])
        deploy(hub_db, MODEL, "1.0.0", "group:press", "immediate")
        good = agent_config(tmp_path / "good", line, server, tokens["gw-tls"], broker, "gw-tls", trained)
        good["hub"]["ca_file"] = str(ca)
        bad = agent_config(tmp_path / "bad", line, server, tokens["gw-wrong-ca"], broker, "gw-wrong-ca",
                           trained)
        bad["hub"]["ca_file"] = str(other_ca)
        async with running_agent(good) as a, running_agent(bad) as b:
            await wait_for(lambda: active(a) == "1.0.0", 20, "model over TLS")
            await wait_for(lambda: a.uploader is not None and a.uploader.uploaded_records > 0, 20,
                           "upload over TLS")
            await wait_for(lambda: b.sync is not None and b.sync.status.last_error is not None, 20,
                           "refused certificate")
            assert b.model is None and "CERTIFICATE_VERIFY_FAILED" in (b.sync.status.last_error or "")
            # the operator sees it: /readyz names the hub link as degraded, /metrics has it at 0
            assert b.health_server is not None and a.health_server is not None
            _, ready = await http_get(b.health_server.port, "/readyz")
            assert any("hub sync" in d and "CERTIFICATE" in d for d in json.loads(ready)["degraded"])
            _, metrics = await http_get(b.health_server.port, "/metrics")
            assert 'edge_hub_connected{link="sync"} 0.0' in metrics
            _, good_metrics = await http_get(a.health_server.port, "/metrics")
            assert 'edge_hub_connected{link="sync"} 1.0' in good_metrics
            assert "edge_hub_sync_last_success_timestamp_seconds" in good_metrics
    finally:
        server.stop()
