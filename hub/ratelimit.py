"""The hub's repeated warnings (unknown tokens, unreadable records, refused bodies, cut uploads)
through the shared bounded limiter (agent.aio.loglimit): the first of a kind is logged, repeats
within the period are counted, and the next line says how many were held back. At most
``max_keys`` kinds are remembered, so a flood of distinct keys cannot grow memory.

``edge-hub serve`` also puts the shared repeat filter on its log handlers, for everything else."""

from __future__ import annotations

import logging
from typing import Any

from agent.aio.loglimit import RepeatLimiter

LIMITER = RepeatLimiter(period_s=60.0, max_keys=1024)


def warn_limited(logger: logging.Logger, key: str, msg: str, *args: Any,
                 limiter: RepeatLimiter | None = None) -> None:
    held = (limiter if limiter is not None else LIMITER).admit(key)  # (an empty one is falsy)
    if held is None:
        return
    if held:
        logger.warning(msg + " (%d more like this suppressed)", *args, held)
    else:
        logger.warning(msg, *args)
