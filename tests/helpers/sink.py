"""A reading sink for tests that drive a source directly: it keeps every reading offered."""

from __future__ import annotations

from agent.types import Reading


class Sink:
    def __init__(self) -> None:
        self.readings: list[Reading] = []

    def offer(self, reading: Reading) -> None:
        self.readings.append(reading)

    def alive(self, source: str, ts: float) -> None:
        pass
