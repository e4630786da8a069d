"""Applying a changed config to the running agent, component by component: a changed source is
stopped and started with its new settings, the others keep running; settings read on every use
(sampling, rollback policy, flush interval) take effect by swapping the config. A few settings
shape what the process holds open (state directory, outbox file, the hub connection) and need
a restart: an overlay that changes them is refused, never half-applied."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig
from agent.ingest.sources import build_source
from agent.outputs.publish import MqttPublisher
from agent.service.graph import label_listeners
from agent.service.health import HealthServer

if TYPE_CHECKING:
    from agent.service.agent import Agent

log = logging.getLogger(__name__)

# dotted settings that only a restart applies
RESTART_ONLY = ("gateway_id", "state_dir", "reading_queue", "log_json", "hub", "outbox.path",
                "outbox.synchronous", "outbox.disk_budget_bytes", "outputs.opcua_writeback")
# per model: which models run, and what each loads, need a restart too
RESTART_ONLY_PER_MODEL = ("name", "bundle", "runtime", "labels", "outputs.opcua_writeback")


def _get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def _dump(cfg: AgentConfig) -> dict[str, Any]:
    return cfg.model_dump(mode="json")


def restart_only_changes(old: AgentConfig, new: AgentConfig) -> list[str]:
    a, b = _dump(old), _dump(new)
    changed = [p for p in RESTART_ONLY if _get(a, p) != _get(b, p)]
    if len(a["models"]) != len(b["models"]):
        changed.append("models")
    else:
        for i, (x, y) in enumerate(zip(a["models"], b["models"], strict=True)):
            label = "model" if old.models[i].shorthand else f"models[{x['name']}]"
            changed += [f"{label}.{k}" for k in RESTART_ONLY_PER_MODEL if _get(x, k) != _get(y, k)]
    kinds = (type(old.labels).__name__, type(new.labels).__name__)
    if kinds[0] != kinds[1] and "MqttLabelsConfig" not in kinds:
        changed.append("labels")  # OPC UA labels shape the feature builder's tags
    return changed


def changed_components(old: AgentConfig, new: AgentConfig) -> list[str]:
    """Names of the running components (as in /readyz) whose settings differ."""
    a, b = _dump(old), _dump(new)
    out = []
    old_sources = {s["name"]: s for s in a["sources"]}
    for s in b["sources"]:
        if old_sources.get(s["name"]) != s:
            out.append(f"source:{s['name']}")
    out += [f"source:{n}" for n in old_sources if n not in {s["name"] for s in b["sources"]}]
    for section, component in (("outputs", "mqtt-out"), ("labels", "labels"), ("health", "health"),
                               ("features", "features"), ("monitoring", "monitoring"),
                               ("models", "model-policy"), ("log_level", "logging")):
        if a.get(section) != b.get(section):
            out.append(component)
    return out


async def apply(agent: Agent, new: AgentConfig) -> list[str]:
    """Build what changed, then swap it in; returns what changed."""
    old = agent.config
    changed = changed_components(old, new)
    # build first: if a component cannot be made from its new settings, nothing has changed yet
    new_sources = {s.name: s for s in new.sources}
    built = {f"source:{name}": build_source(cfg, new, agent) for name, cfg in new_sources.items()
             if f"source:{name}" in changed}
    publisher = MqttPublisher(new.outputs.mqtt, new.gateway_id) if (
        "mqtt-out" in changed and new.outputs.mqtt) else None
    # the top-level label source (a model's own needs a restart: it is part of its entry)
    listener = label_listeners(new, agent.units, agent._on_route_label).get("labels") if (
        "labels" in changed) else None
    health = HealthServer(agent, new.health.listen, new.health.port) if (
        "health" in changed and new.health.enabled) else None

    agent.config = new
    for name in changed:
        if name.startswith("source:"):
            await agent.stop_component(name)
            agent.sources = [s for s in agent.sources if f"source:{s.status.name}" != name]
            source = built.get(name)
            if source is not None:
                agent.sources.append(source)
                agent.start_component(name, source.run)
    if "mqtt-out" in changed:
        await agent.stop_component("mqtt-out")
        agent.publisher = publisher
        if publisher is not None:
            agent.start_component("mqtt-out", publisher.run)
    if "labels" in changed:
        await agent.stop_component("labels")
        agent.label_listeners.pop("labels", None)
        if listener is not None:
            agent.label_listeners["labels"] = listener
            agent.start_component("labels", listener.run)
    if "health" in changed:
        await agent.stop_component("health")
        agent.health_server = health
        if health is not None:
            agent.start_component("health", health.run)
    for unit, entry in zip(agent.units, new.models, strict=True):  # same models: checked above
        unit.reconfigure(new, entry)
    if "logging" in changed:
        logging.getLogger().setLevel(new.log_level)
    log.info("config applied: %s", ", ".join(changed) or "no running component changed")
    return changed
