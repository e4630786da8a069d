"""A failing component is restarted with backoff, alone; cancellation still stops it."""

from __future__ import annotations

import asyncio

import pytest

from agent.aio.supervisor import ComponentHealth, supervise
from agent.config import BackoffConfig


async def test_failing_component_restarts_and_others_keep_running() -> None:
    attempts = 0
    ticks = 0

    async def flaky() -> None:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise RuntimeError(f"boom {attempts}")

    async def steady() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    health = ComponentHealth("flaky")
    fast = BackoffConfig(initial_s=0.01, max_s=0.02)
    tasks = [asyncio.create_task(supervise("flaky", flaky, health, fast)),
             asyncio.create_task(supervise("steady", steady, ComponentHealth("steady"), fast))]
    await asyncio.sleep(0.3)
    for t in tasks:
        t.cancel()
    for t in tasks:
        with pytest.raises(asyncio.CancelledError):
            await t
    assert attempts >= 3 and health.restarts in (attempts - 1, attempts)  # the last may be cut short
    assert health.last_error is not None and health.last_error.startswith("RuntimeError: boom")
    assert ticks >= 10 and not health.running


async def test_swallowed_cancellation_is_raised_again() -> None:
    """A library that swallows CancelledError (asyncio.wait_for on 3.11 can) must not keep a
    component alive through shutdown."""

    async def swallowing() -> None:
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass  # what a misbehaving library does
            raise ConnectionError("lost")

    task = asyncio.create_task(supervise("bad", swallowing, ComponentHealth("bad"),
                                         BackoffConfig(initial_s=0.01, max_s=0.02)))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 2)
