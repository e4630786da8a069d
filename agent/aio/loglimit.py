"""One limiter for every repeated warning: a logging filter that lets a message through once per
period and says how many like it it held back ("... (412 more like this suppressed in 60 s)").

Messages are alike when they share ``extra={"limit_key": ...}`` or, without one, the same logger,
level and format string (so "malformed payload on %s" on 1,000 topics is one message). Memory
is bounded: at most ``max_keys`` keys are remembered (least recently seen forgotten first), and
each logger may emit at most ``logger_burst`` lines per period whatever its keys, so a flood of
distinct texts cannot flood the journal either. Held-back counts are reported with the next line
of the key, or by a sweep line once its period is over. CRITICAL is never held back.

Used by the agent's and the hub's log setup (``install``), for every handler they own.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class RepeatLimiter:
    """``admit(key)`` -> None when held back, else how many were held back before this one."""

    def __init__(self, period_s: float = 60.0, max_keys: int = 512,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.period_s = period_s
        self.max_keys = max_keys
        self._clock = clock
        self._lock = threading.Lock()
        # key -> [window start, lines admitted in the window, held back since the last line]
        self._keys: OrderedDict[Any, list[float]] = OrderedDict()
        self.suppressed_total = 0

    def admit(self, key: Any, burst: int = 1) -> int | None:
        now = self._clock()
        with self._lock:
            state = self._keys.get(key)
            if state is None or now - state[0] >= self.period_s:
                held = int(state[2]) if state is not None else 0
                self._keys[key] = [now, 1, 0]
                self._keys.move_to_end(key)
                while len(self._keys) > self.max_keys:
                    self._keys.popitem(last=False)
                return held
            self._keys.move_to_end(key)
            if state[1] < burst:
                state[1] += 1
                held, state[2] = int(state[2]), 0
                return held
            state[2] += 1
            self.suppressed_total += 1
            return None

    def expired(self) -> list[tuple[Any, int]]:
        """Keys whose period is over with lines still held back; their counts are reset."""
        now = self._clock()
        out = []
        with self._lock:
            for key, state in self._keys.items():
                if state[2] and now - state[0] >= self.period_s:
                    out.append((key, int(state[2])))
                    state[2] = 0
        return out

    def __len__(self) -> int:
        return len(self._keys)


class RepeatFilter(logging.Filter):
    """A handler filter over a RepeatLimiter; WARNING and ERROR are limited by default."""

    def __init__(self, limiter: RepeatLimiter | None = None, min_level: int = logging.WARNING,
                 logger_burst: int = 20) -> None:
        super().__init__()
        self.limiter = limiter if limiter is not None else RepeatLimiter()
        self.min_level = min_level
        self.logger_burst = logger_burst
        self._next_sweep = 0.0
        self._sweeping = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(self._sweeping, "on", False) or getattr(record, "limit_bypass", False):
            return True
        if not self.min_level <= record.levelno < logging.CRITICAL:
            return True
        self._sweep()
        key = getattr(record, "limit_key", None) or (record.name, record.levelno, str(record.msg))
        held = self.limiter.admit(key)
        if held is None:
            return False
        if self.limiter.admit(("logger", record.name, record.levelno), self.logger_burst) is None:
            return False
        if held:
            record.msg = (f"{record.getMessage()} ({held} more like this suppressed in the last "
                          f"{self.limiter.period_s:g} s)")
            record.args = ()
        return True

    def _sweep(self) -> None:
        """Say what was held back for keys that went quiet, at most once a second."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        self._sweeping.on = True
        try:
            for key, count in self.limiter.expired():
                what = key if isinstance(key, str) else f"{key[0]}: {str(key[2])[:80]}"
                log.warning("%d more like this suppressed in the last %g s: %s", count,
                            self.limiter.period_s, what)
        finally:
            self._sweeping.on = False


def install(handler: logging.Handler, period_s: float = 60.0) -> RepeatFilter:
    """Put one repeat filter on a handler (replacing an earlier one) and return it."""
    for old in [f for f in handler.filters if isinstance(f, RepeatFilter)]:
        handler.removeFilter(old)
    limiter = RepeatFilter(RepeatLimiter(period_s))
    handler.addFilter(limiter)
    return limiter
