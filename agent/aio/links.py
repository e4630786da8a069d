"""The connection state of a link (a source, an output, the hub) and rate-limited logging of
problems that repeat: what health, status and metrics read, never the component's internals."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


@dataclass
class SourceStatus:
    """One link's state. ``role`` says what its loss means: a ``source`` down makes the agent
    not ready; any other role (output, labels, hub) makes it degraded."""

    name: str
    kind: str
    role: str = "source"
    connected: bool = False
    readings: int = 0
    malformed: int = 0
    reconnects: int = 0
    attempts: int = 0  # connection attempts, probes included (what a server that is down sees)
    dropped: int = 0  # items this link had to drop (an output's full queue)
    last_error: str | None = None
    # a short, stable code for a metric label and scripts: an OPC UA status name
    # (BadCertificateUntrusted), or connection_refused, timeout, closed, ...
    reason: str | None = None
    connected_since: float | None = None
    changed_at: float | None = None  # when `connected` last changed (epoch s)

    def as_dict(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items()}

    def mark_connected(self) -> None:
        now = time.time()
        if not self.connected:
            self.changed_at = now
            self.connected_since = now
        self.connected = True
        self.last_error = None
        self.reason = None

    def mark_down(self, why: str | None = None, reason: str | None = None) -> None:
        """The link is not (or no longer) up; keep the last known error unless told a new one."""
        if self.connected or self.changed_at is None:
            self.changed_at = time.time()
        self.connected = False
        self.connected_since = None
        if why is not None:
            self.last_error = why
        if reason is not None:
            self.reason = reason

    def mark_failed(self, why: str, reason: str | None = None) -> bool:
        """Record a failed attempt; True when it is news (worth one log line, not one per retry)."""
        news = self.connected or self.last_error != why
        self.mark_down(why, reason or self.reason or "failed")
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
    # a hot path's report (a drop per batch while the broker is away): at most one log call in
    # this time, because even a line the limiter holds back costs a LogRecord per batch; the
    # count in the next line says how many there were
    min_interval_s: float = 0.0
    _next_log: float = field(default=0.0, repr=False)

    def report(self, key: str, message: str | Callable[[], str], n: int = 1) -> None:
        """``message``: the text, or a function making it (only called when a line is due)."""
        self.count += n
        if key in self.by_key or len(self.by_key) < self.max_keys:
            self.by_key[key] = self.by_key.get(key, 0) + n
        if self.min_interval_s:
            now = time.monotonic()
            if now < self._next_log:
                return
            self._next_log = now + self.min_interval_s
        text = message if isinstance(message, str) else message()
        log.warning("%s (%d so far)", text, self.count, extra={"limit_key": self.kind})


def links(holder: Any) -> list[SourceStatus]:
    """Every link's state: the holder's sources, then every component it holds that publishes a
    SourceStatus as ``status`` (MQTT output, label listener, hub links, Sparkplug output...), so
    a new link shows up in health, metrics and status without new code there."""
    found: list[SourceStatus] = [s.status for s in getattr(holder, "sources", [])]
    for value in list(vars(holder).values()):
        # a component, or a mapping of them (the label listeners by name)
        for item in (list(value.values()) if isinstance(value, dict) else [value]):
            status = getattr(item, "status", None)
            if isinstance(status, SourceStatus) and all(status is not f for f in found):
                found.append(status)
    return found
