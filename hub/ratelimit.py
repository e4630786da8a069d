"""One bounded limiter for the hub's repeated warnings (unknown tokens, unreadable records,
refused bodies): the first of a kind is logged, repeats within ``period_s`` are counted, and
the next line says how many were suppressed. At most ``max_keys`` kinds are tracked (the
oldest is forgotten), so a flood of distinct keys cannot grow memory.

The agent's shared limiter (agent/aio) was not on main when this was written; this one has the
same contract and can be replaced by it."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Any


class BoundedRateLimiter:
    def __init__(self, period_s: float = 60.0, max_keys: int = 1024) -> None:
        self.period_s = period_s
        self.max_keys = max_keys
        self._keys: OrderedDict[str, tuple[float, int]] = OrderedDict()  # key -> (last logged, suppressed)
        self._lock = threading.Lock()  # request threads and the event loop both log

    def allow(self, key: str, now: float | None = None) -> tuple[bool, int]:
        """(log this one?, how many were suppressed since the last line of this key)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            last = self._keys.get(key)
            if last is not None and now - last[0] < self.period_s:
                self._keys[key] = (last[0], last[1] + 1)
                return False, 0
            self._keys[key] = (now, 0)
            self._keys.move_to_end(key)
            while len(self._keys) > self.max_keys:
                self._keys.popitem(last=False)
            return True, last[1] if last else 0

    def __len__(self) -> int:
        return len(self._keys)

    def reset(self) -> None:
        with self._lock:
            self._keys.clear()


LIMITER = BoundedRateLimiter()


def warn_limited(logger: logging.Logger, key: str, msg: str, *args: Any,
                 limiter: BoundedRateLimiter | None = None) -> None:
    ok, suppressed = (limiter or LIMITER).allow(key)
    if ok:
        if suppressed:
            logger.warning(msg + " (%d more suppressed)", *args, suppressed)
        else:
            logger.warning(msg, *args)
