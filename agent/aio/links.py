"""The connection state of a link (a source, an output, the hub) and rate-limited logging of
problems that repeat: what health, status and metrics read, never the component's internals."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)


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
