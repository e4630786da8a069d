"""What every protocol source shares: the sink it feeds and the status it reports."""

from __future__ import annotations

from typing import Protocol

from agent.aio.links import RateLimitedLog, SourceStatus
from agent.types import Reading

__all__ = ["RateLimitedLog", "ReadingSink", "Source", "SourceStatus"]


class ReadingSink(Protocol):
    def offer(self, reading: Reading) -> None:
        """Take a reading without blocking (the sink counts what it has to drop)."""

    def alive(self, source: str, ts: float) -> None:
        """The source confirms its values are current (e.g. an OPC UA keep-alive)."""


class Source(Protocol):
    status: SourceStatus

    async def run(self) -> None:
        """Read forever, reconnecting on failure. Returns only when cancelled."""
