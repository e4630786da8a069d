"""The connection state of a link (a source, an output, the hub) and rate-limited logging of
problems that repeat: what health, status and metrics read, never the component's internals."""

from __future__ import annotations

import logging
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
    """Count a repeating problem and warn about it through the one log limiter
    (agent.aio.loglimit): every instance is one kind of message, whatever topic or tag it is
    about, so 1,000 topics give one line a minute and memory stays one counter."""

    kind: str = "repeated problem"
    count: int = 0
    by_key: dict[str, int] = field(default_factory=dict)
    max_keys: int = 64  # the first keys seen are counted apart, for status; the rest together

    def report(self, key: str, message: str) -> None:
        self.count += 1
        if key in self.by_key or len(self.by_key) < self.max_keys:
            self.by_key[key] = self.by_key.get(key, 0) + 1
        log.warning("%s (%d so far)", message, self.count, extra={"limit_key": self.kind})
