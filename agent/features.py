"""Tag readings -> model input vectors, in the order the bundle declares (pure, synchronous).

Latest values live in numpy arrays indexed by tag, so building a sample is a gather, not a
Python loop over features. A tag older than its staleness limit, missing, or of bad quality
makes the sample invalid: counted by reason, never silently filled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from agent.config import FeaturesConfig
from agent.types import Quality, Reading, Sample


@dataclass(frozen=True)
class TagSpec:
    tag: str
    max_age_s: float


def format_id(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(value)


class FeatureBuilder:
    def __init__(self, inputs: list[TagSpec], config: FeaturesConfig,
                 extra_tags: list[str] | None = None) -> None:
        self.config = config
        self.inputs = [s.tag for s in inputs]
        watched = self.inputs + [t for t in (extra_tags or []) if t not in self.inputs]
        for t in (config.trigger_tag, config.sample_id_tag):
            if t and t not in watched:
                watched.append(t)
        self._index = {tag: i for i, tag in enumerate(watched)}
        n = len(watched)
        self._value = np.full(n, np.nan)
        self._seen = np.full(n, -np.inf)  # receive time of the latest reading
        self._good = np.zeros(n, dtype=bool)
        # per tag, which source delivered it; per source, when it last confirmed liveness
        self._src_of = np.zeros(n, dtype=np.int64)  # 0 = the 'unknown source' slot
        self._src_ids: dict[str, int] = {}
        self._alive = np.full(1, -np.inf)
        self._max_age = np.array([s.max_age_s for s in inputs])
        self._input_idx = np.arange(len(inputs))
        self._pending: list[tuple[float, float]] = []  # (trigger ts, sample id value) in order
        self._next_tick: float | None = None
        self._counter = 0
        self.samples = 0
        self.invalid: Counter[str] = Counter()

    def update(self, r: Reading) -> None:
        i = self._index.get(r.tag)
        if i is None:
            return
        trig = self.config.trigger_tag
        # the first value seen (at start or after a restart) is a state, not a new part
        if (trig is not None and r.tag == trig and r.quality == Quality.GOOD
                and not np.isnan(self._value[i]) and r.value != self._value[i]):
            self._value[i] = r.value  # the id tag may be the trigger itself: store first
            id_tag = self.config.sample_id_tag or trig
            self._pending.append((r.source_ts, self._value[self._index[id_tag]]))
        self._value[i] = r.value
        self._seen[i] = r.receive_ts
        self._good[i] = r.quality == Quality.GOOD
        self._src_of[i] = self._source_id(r.source)

    def _source_id(self, source: str) -> int:
        sid = self._src_ids.get(source)
        if sid is None:
            sid = self._src_ids[source] = len(self._src_ids) + 1
            self._alive = np.append(self._alive, -np.inf)
        return sid

    def alive(self, source: str, ts: float) -> None:
        self._alive[self._source_id(source)] = ts

    def due(self, now: float) -> list[Sample]:
        """Samples ready at ``now``: pending triggers, or the periodic ticks that have passed."""
        if self.config.mode == "trigger":
            pending, self._pending = self._pending, []
            out = []
            for ts, id_value in pending:
                sample = self._build(now, ts, format_id(id_value) if id_value == id_value else None)
                if sample is not None:
                    out.append(sample)
            return out
        if self._next_tick is None:
            self._next_tick = now
        out = []
        while now >= self._next_tick:
            sample = self._build(now, self._next_tick, None)
            if sample is not None:
                out.append(sample)
            self._next_tick += self.config.period_s
            if now - self._next_tick > 10 * self.config.period_s:
                self._next_tick = now  # after a stall, do not replay a flood of old ticks
        return out

    def next_deadline(self) -> float | None:
        return self._next_tick if self.config.mode == "periodic" else None

    def _build(self, now: float, ts: float, sample_id: str | None) -> Sample | None:
        idx = self._input_idx
        seen = np.maximum(self._seen[idx], self._alive[self._src_of[idx]])
        missing = np.isnan(self._value[idx])
        stale = (now - seen) > self._max_age
        bad = ~self._good[idx]
        if missing.any() or stale.any() or bad.any():
            reason = "missing" if missing.any() else ("stale" if stale.any() else "bad_quality")
            which = int(np.flatnonzero(missing | stale | bad)[0])
            self.invalid[f"{reason}:{self.inputs[which]}"] += 1
            return None
        self.samples += 1
        self._counter += 1
        return Sample(sample_id or f"s{self._counter}", ts, tuple(self._value[idx].tolist()))

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())
