"""What every protocol source shares: the sink it feeds and the status it reports."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Protocol

from agent.types import Reading

log = logging.getLogger(__name__)


class ReadingSink(Protocol):
    def offer(self, reading: Reading) -> None:
        """Take a reading without blocking (the sink counts what it has to drop)."""

    def alive(self, source: str, ts: float) -> None:
        """The source confirms its values are current (e.g. an OPC UA keep-alive)."""


@dataclass
class SourceStatus:
    name: str
    kind: str
    connected: bool = False
    readings: int = 0
    malformed: int = 0
    reconnects: int = 0
    last_error: str | None = None
    connected_since: float | None = None

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()}

    def mark_failed(self, why: str) -> bool:
        """Record a failed attempt; True when it is news (worth one log line, not one per retry)."""
        news = self.connected or self.last_error != why
        self.connected = False
        self.last_error = why
        self.reconnects += 1
        return news


@dataclass
class RateLimitedLog:
    """Log a repeating problem once per key per period; count every occurrence."""

    period_s: float = 60.0
    counts: dict[str, int] = field(default_factory=dict)
    _last: dict[str, float] = field(default_factory=dict)

    def report(self, key: str, message: str) -> None:
        self.counts[key] = self.counts.get(key, 0) + 1
        now = time.monotonic()
        if now - self._last.get(key, -1e9) >= self.period_s:
            self._last[key] = now
            log.warning("%s (%d so far on %s)", message, self.counts[key], key)


class Source(Protocol):
    status: SourceStatus

    async def run(self) -> None:
        """Read forever, reconnecting on failure. Returns only when cancelled."""
