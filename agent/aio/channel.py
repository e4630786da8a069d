"""A bounded channel between two pipeline stages: the producer never waits (a full channel
drops the offered item and counts it), the consumer takes everything queued at once. Closing
it is how the consumer learns to finish: it drains what is left, then ``take`` says so."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

from agent.aio.links import RateLimitedLog

T = TypeVar("T")


@dataclass
class ChannelSnapshot:
    name: str
    depth: int
    capacity: int
    offered: int
    dropped: int
    closed: bool

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Channel(Generic[T]):
    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.capacity = capacity
        self._items: deque[T] = deque()
        self._wake = asyncio.Event()
        self._drop_log = RateLimitedLog(f"channel {name} full")
        self.offered = 0
        self.dropped = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._items))

    def put(self, item: T) -> bool:
        """Never blocks: False (counted) when the consumer is ``capacity`` items behind."""
        self.offered += 1
        if len(self._items) >= self.capacity or self.closed:
            self.dropped += 1
            self._drop_log.report(self.name, f"{self.name}: channel full ({self.capacity} items "
                                  "queued), item dropped: the next stage cannot keep up")
            return False
        self._items.append(item)
        self._wake.set()
        return True

    def take_all(self) -> list[T]:
        items = list(self._items)
        self._items.clear()
        self._wake.clear()
        return items

    async def wait(self, at_most_s: float | None) -> None:
        """Until something is queued, the channel closes, or ``at_most_s`` passes."""
        if self._items or self.closed:
            return
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
            async with asyncio.timeout(at_most_s):
                await self._wake.wait()
        except TimeoutError:
            pass

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    def snapshot(self) -> ChannelSnapshot:
        return ChannelSnapshot(self.name, len(self._items), self.capacity, self.offered,
                               self.dropped, self.closed)
