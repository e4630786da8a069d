"""Limits a real PLC's OPC UA server has and asyncua's server does not: a cap on monitored items
per subscription (answered with BadTooManyMonitoredItems and advertised in the server
capabilities) and queue size 1 for items that ask for 0 (the OPC UA default: only the newest
value between two publishes survives). The tests use them to reproduce what a line does."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from asyncua import ua
from asyncua.server.monitored_item_service import MonitoredItemService


@dataclass(frozen=True)
class PlcLimits:
    max_items_per_subscription: int | None = None
    default_queue_size_one: bool = True  # the spec's default; asyncua's server queues everything


@contextlib.contextmanager
def plc_limits(limits: PlcLimits) -> Iterator[None]:
    """Patch asyncua's monitored-item service while the simulated server runs (one server with
    limits at a time per process: tests run sequentially)."""
    create, revise = MonitoredItemService.create_monitored_items, MonitoredItemService._revise_queue_size

    async def limited_create(self: MonitoredItemService, params: Any) -> list[Any]:
        cap = limits.max_items_per_subscription
        if cap is None:
            return list(await create(self, params))
        room = max(0, cap - len(self._monitored_items))
        allowed, refused = params.ItemsToCreate[:room], params.ItemsToCreate[room:]
        params.ItemsToCreate = allowed
        results = list(await create(self, params)) if allowed else []
        for _ in refused:
            result = ua.MonitoredItemCreateResult()
            result.StatusCode = ua.StatusCode(ua.StatusCodes.BadTooManyMonitoredItems)
            results.append(result)
        return results

    def spec_revise(self: MonitoredItemService, requested: int) -> int:
        if limits.default_queue_size_one and requested in (0, 1):
            return 1
        return int(revise(self, requested))

    MonitoredItemService.create_monitored_items = limited_create
    MonitoredItemService._revise_queue_size = spec_revise
    try:
        yield
    finally:
        MonitoredItemService.create_monitored_items = create
        MonitoredItemService._revise_queue_size = revise
