"""Jittered exponential backoff: retries spread out so a fleet does not reconnect in lockstep."""

from __future__ import annotations

import random

from agent.config import BackoffConfig


class Backoff:
    def __init__(self, config: BackoffConfig, rng: random.Random | None = None) -> None:
        self._initial = config.initial_s
        self._max = config.max_s
        self._attempt = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """'Full jitter': uniform in [cap/2, cap], cap doubling each failure up to max."""
        cap = min(self._max, self._initial * (2 ** self._attempt))
        self._attempt += 1
        return self._rng.uniform(cap / 2, cap)

    def reset(self) -> None:
        self._attempt = 0
