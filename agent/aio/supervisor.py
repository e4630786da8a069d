"""Keep long-running component loops alive: a failing one restarts with backoff, alone."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from agent.aio.backoff import Backoff
from agent.config import BackoffConfig

log = logging.getLogger(__name__)


@dataclass
class ComponentHealth:
    name: str
    restarts: int = 0
    last_error: str | None = None
    running: bool = False
    heartbeat: float = 0.0  # monotonic time of the last sign of progress


def raise_if_cancelling() -> None:
    """Re-raise a cancellation a library swallowed (asyncio.wait_for on 3.11 can): a loop that
    catches connection errors must still stop when its task is being cancelled."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def supervise(name: str, factory: Callable[[], Awaitable[None]], health: ComponentHealth,
                    backoff: BackoffConfig | None = None, finite: bool = False) -> None:
    """Run ``factory()`` until cancelled; an exception restarts it after a jittered delay.
    ``finite``: a normal return is the component's end (a stage whose input channel closed)."""
    delays = Backoff(backoff or BackoffConfig(initial_s=0.5, max_s=30.0))
    while True:
        health.running = True
        health.heartbeat = time.monotonic()
        started = time.monotonic()
        try:
            await factory()
            if finite:
                health.running = False
                return
            log.warning("component %s returned; restarting it", name)
        except asyncio.CancelledError:
            health.running = False
            raise
        except Exception as exc:  # the supervisor's job: contain any component failure
            raise_if_cancelling()
            health.last_error = f"{type(exc).__name__}: {exc}"
            log.error("component %s failed: %s", name, health.last_error, exc_info=exc)
        health.running = False
        health.restarts += 1
        if time.monotonic() - started > 60:
            delays.reset()  # it ran for a while: a new failure is not part of a crash loop
        await asyncio.sleep(delays.next_delay())
