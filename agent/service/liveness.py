"""Is the agent alive and moving: the one-line status systemd shows, the worst health of its
models, and the loops that made no progress (then the watchdog stops its pings and systemd
restarts the agent, WatchdogSec=)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.service.agent import Agent

log = logging.getLogger(__name__)


def worst_health(agent: Agent) -> str:
    levels = [u.health() for u in agent.units]
    for level in ("alarm", "warning"):
        if level in levels:
            return level
    return "ok"


def status_line(agent: Agent) -> str:
    connected = sum(1 for s in agent.sources if s.status.connected)
    models = ", ".join(f"{u.model.bundle.label if u.model else u.name + ' (no model)'}"
                       for u in agent.units)
    depth = agent.outbox_stats.depth if agent.outbox_stats else 0
    return (f"{connected}/{len(agent.sources)} sources, {models}, {agent.predictions} predictions, "
            f"health {worst_health(agent)}, outbox {depth}")


def stuck_components(agent: Agent, now: float | None = None) -> list[str]:
    """Loops whose heartbeat is older than they may be: the watchdog must then not ping."""
    now = time.monotonic() if now is None else now
    # each loop beats at least once per period; allow several missed beats before judging
    floor = 2 * (agent.notifier.watchdog_interval_s or 1.0)
    periods = {"status": 2.0, "flusher": agent.config.outbox.flush_interval_s}
    limits = {name: max(5 * period, floor) for name, period in periods.items()}
    stuck = [name for name, limit in limits.items()
             if name in agent.health and now - agent.health[name].heartbeat > limit]
    for unit in agent.units:  # a model whose loop stopped turning (a hung runtime)
        name = f"model:{unit.dir_name}"
        running = name in agent.health and agent.health[name].running
        if running and now - unit.heartbeat > max(5 * max(1.0, unit.features.period_s), floor):
            stuck.append(name)
    return stuck


async def watchdog_loop(agent: Agent) -> None:
    """WATCHDOG=1 only while the event loop turns and every loop shows progress: a hung
    component stops the pings and systemd restarts the agent (WatchdogSec=)."""
    interval = agent.notifier.watchdog_interval_s or 1.0
    while True:
        stuck = stuck_components(agent)
        if stuck:
            log.error("not feeding the watchdog: %s made no progress", ", ".join(stuck))
        else:
            agent.notifier.watchdog(status_line(agent))
        await asyncio.sleep(interval)
