"""The agent's state as documents: status.json for the local operator (`edge-agent status`)
and the status report for the hub (fleet view, rollout and retrain decisions). Both are made
of what each component publishes about itself (``snapshot()``, ``counters()``, ``report()``,
``status``), never of the agent's internals."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.aio.links import links

if TYPE_CHECKING:
    from agent.service.agent import Agent


def source_doc(source: Any) -> dict[str, Any]:
    doc: dict[str, Any] = source.status.as_dict()
    counters = getattr(source, "counters", None)
    if counters is not None:
        doc["counters"] = counters()
    return doc


def channels(agent: Agent) -> list[dict[str, Any]]:
    """Every bounded channel of the pipeline, with its drops."""
    return [u.channel.snapshot().as_dict() for u in agent.units]


def snapshot(agent: Agent) -> dict[str, Any]:
    """What status.json holds: read by `edge-agent status`, written every 2 s. The top level
    describes the first model as the single-model release did; `models` holds them all."""
    units = {u.name: u.snapshot() for u in agent.units}
    first = next(iter(units.values()))
    stats = agent.outbox_stats
    recorder = agent.recorder.snapshot()
    publisher = agent.publisher
    return {
        "gateway_id": agent.config.gateway_id, "agent_version": __version__, "pid": os.getpid(),
        "started": agent.started, "updated": time.time(),
        "model": first["model"], "model_error": first["model_error"],
        "models": units,
        "sources": [source_doc(s) for s in agent.sources],
        "links": [link.as_dict() for link in links(agent)],
        "parts_missed": first["parts_missed"], "samples": first["samples"],
        "samples_per_s": first["samples_per_s"], "invalid_samples": first["invalid_samples"],
        "predictions": agent.predictions, "inference_errors": agent.inference_errors,
        "labels": first["labels"], "dropped_readings": agent.dropped_readings,
        "readings_offered": agent.offered, "readings_recorded": recorder.readings_recorded,
        "bad_readings": dict(agent.intake.bad), "channels": channels(agent),
        "recorder": recorder.__dict__,
        "published": publisher.published if publisher else None,
        "publish_dropped": publisher.dropped if publisher else None,
        "alarms_published": publisher.published_raw if publisher else None,
        "sparkplug_out": agent.sparkplug_out.counters() if agent.sparkplug_out else None,
        "unknown_labels": {name: u["unknown_labels"] for name, u in units.items()},
        "outbox": stats.__dict__ if stats else None,
        "lifecycle": first["lifecycle"],
        "config": agent.remote.report() if agent.remote else None,
        "sync": {"connected": agent.sync.status.connected, "last_success": agent.sync.last_success,
                 "last_error": agent.sync.status.last_error, "polls": agent.sync.polls,
                 "reports": agent.sync.reports} if agent.sync else None,
        "monitor": first["monitor"],
        "components": {k: {"restarts": h.restarts, "last_error": h.last_error}
                       for k, h in agent.health.items()},
    }


def hub_report(agent: Agent) -> dict[str, Any]:
    """What the hub's fleet view and rollout decisions need, besides the model versions (the
    sync adds those of the first model at the top level): one `models` entry per model."""
    stats = agent.outbox_stats
    errors = [f"{k}: {h.last_error}" for k, h in agent.health.items() if h.last_error]
    first = agent.units[0].hub_entry()
    # a `model:` agent that runs nothing yet does not know its model's name: it reports as a
    # one-model agent does (the hub reads the top level as the model it deploys there)
    entries = [u.hub_entry() for u in agent.units
               if not (u.entry.shorthand and u.model is None)][:32]
    metrics = {**first["metrics"], "dropped_readings": agent.dropped_readings}
    return {
        "agent_version": __version__, "updated": time.time(),
        "alarms": first["alarms"], "health": first["health"],
        "outbox_depth": stats.depth if stats else None,
        "metrics": {k: metrics[k] for k in ("predictions", "samples_per_s", "inference_errors",
                                            "labels", "dropped_readings", "monitor")},
        "last_error": agent.units[0].model_error or (errors[-1] if errors else None),
        "config": agent.remote.report() if agent.remote else None,
        **({"models": entries} if entries else {}),
    }
