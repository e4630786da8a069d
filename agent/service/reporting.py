"""The agent's state as documents: status.json for the local operator (`edge-agent status`)
and the status report for the hub (fleet view, rollout and retrain decisions)."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from agent import __version__
from agent.aio.links import links

if TYPE_CHECKING:
    from agent.service.agent import Agent


def snapshot(agent: Agent) -> dict[str, Any]:
    """What status.json holds: read by `edge-agent status`, written every 2 s."""
    now = time.monotonic()
    samples = agent.builder.samples if agent.builder else 0
    then, before = agent._rate
    if now - then >= 1.0:
        agent.samples_per_s = (samples - before) / (now - then)
        agent._rate = (now, samples)
    model = None
    if agent.model is not None:
        b = agent.model.bundle
        model = {"name": b.manifest.name, "version": b.manifest.version, "sha256": b.sha256,
                 "signed_by": b.signed_by}
    stats = agent.outbox_stats
    return {
        "gateway_id": agent.config.gateway_id, "agent_version": __version__, "pid": os.getpid(),
        "started": agent.started, "updated": time.time(),
        "model": model, "model_error": agent.model_error,
        "sources": [s.status.as_dict() for s in agent.sources],
        "links": [link.as_dict() for link in links(agent)],
        "parts_missed": agent.builder.parts_missed if agent.builder else 0,
        "samples": samples, "samples_per_s": round(agent.samples_per_s, 3),
        "invalid_samples": dict(agent.builder.invalid) if agent.builder else {},
        "predictions": agent.predictions, "inference_errors": agent.inference_errors,
        "labels": agent.labels_received, "dropped_readings": agent.dropped_readings,
        "bad_readings": dict(agent.intake.bad),
        "published": agent.publisher.published if agent.publisher else None,
        "publish_dropped": agent.publisher.dropped if agent.publisher else None,
        "alarms_published": agent.publisher.published_raw if agent.publisher else None,
        "outbox": stats.__dict__ if stats else None,
        "lifecycle": agent.lifecycle.report() if agent.lifecycle else None,
        "config": agent.remote.report() if agent.remote else None,
        "sync": {"connected": agent.sync.status.connected, "last_success": agent.sync.last_success,
                 "last_error": agent.sync.status.last_error, "polls": agent.sync.polls,
                 "reports": agent.sync.reports} if agent.sync else None,
        "monitor": agent.watch.figures() if agent.watch else None,
        "components": {k: {"restarts": h.restarts, "last_error": h.last_error}
                       for k, h in agent.health.items()},
    }

def hub_report(agent: Agent) -> dict[str, Any]:
    """What the hub's fleet view and rollout decisions need, besides the model versions."""
    stats = agent.outbox_stats
    errors = [f"{k}: {h.last_error}" for k, h in agent.health.items() if h.last_error]
    return {
        "agent_version": __version__, "updated": time.time(),
        "alarms": agent.watch.monitor.book.active() if agent.watch else None,
        "health": agent.watch.monitor.book.worst() if agent.watch else None,
        "outbox_depth": stats.depth if stats else None,
        "metrics": {"predictions": agent.predictions, "samples_per_s": round(agent.samples_per_s, 3),
                    "inference_errors": agent.inference_errors, "labels": agent.labels_received,
                    "dropped_readings": agent.dropped_readings,
                    "monitor": agent.watch.figures() if agent.watch else None},
        "last_error": agent.model_error or (errors[-1] if errors else None),
        "config": agent.remote.report() if agent.remote else None,
    }
