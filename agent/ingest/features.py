"""Tag readings -> model input vectors, in the order the bundle declares (pure, synchronous).

Latest values live in numpy arrays indexed by tag, so building a sample is a gather, not a
Python loop over features, and validity is checked for a whole batch at once. A tag older than
its staleness limit, missing, or of bad quality makes the sample invalid: counted by reason,
never silently filled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from agent.config import FeaturesConfig
from agent.inference.batches import SampleBatch
from agent.types import Quality, Reading


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
        n, k = len(watched), len(inputs)
        self._k = k
        self._value = np.full(n, np.nan)
        self._seen = np.full(n, -np.inf)  # receive time of the latest reading
        self._good = np.zeros(n, dtype=bool)
        self._stale_q = np.zeros(n, dtype=bool)  # the source says stale (Sparkplug death, Uncertain)
        # per tag, which source delivered it; per source, when it last confirmed liveness
        self._src_of = np.zeros(n, dtype=np.int64)  # 0 = the 'unknown source' slot
        self._src_ids: dict[str, int] = {}
        self._alive = np.full(1, -np.inf)
        self._max_age = np.array([s.max_age_s for s in inputs])
        self._trigger = self._index.get(config.trigger_tag) if config.trigger_tag else None
        self._id_index = self._index[config.sample_id_tag or config.trigger_tag] if (
            config.trigger_tag) else None
        # triggered samples: (ts, id value, values, seen-or-alive, good) snapshots, in order
        self._open: tuple[float, float] | None = None
        self._snapshots: list[tuple[float, float, np.ndarray, np.ndarray, np.ndarray]] = []
        self._next_tick: float | None = None
        self._counter = 0
        self.samples = 0
        self.invalid: Counter[str] = Counter()
        # parts the trigger counter skipped (it jumped by more than one): never seen, never scored
        self.parts_missed = 0
        self.counter_gaps = 0

    def update(self, r: Reading) -> None:
        i = self._index.get(r.tag)
        if i is None:
            return
        if i == self._trigger and r.quality == Quality.GOOD:
            previous = self._value[i]
            # the first value seen (at start or after a restart) is a state, not a new part
            if not np.isnan(previous) and r.value != previous:
                self._count_gap(previous, r.value)
                self._close_open()  # values after this point belong to the new part
                # the id is read when the trigger fires: PLCs set the serial before the flag
                assert self._id_index is not None
                part_id = r.value if self._id_index == i else self._value[self._id_index]
                self._open = (r.source_ts, part_id)
        self._value[i] = r.value
        self._seen[i] = r.receive_ts
        self._good[i] = r.quality == Quality.GOOD
        self._stale_q[i] = r.quality == Quality.STALE
        sid = self._src_ids.get(r.source)
        self._src_of[i] = sid if sid is not None else self._source_id(r.source)

    def _count_gap(self, previous: float, value: float) -> None:
        """A part counter that jumps by more than one lost the parts in between (a reset or a
        wrap to a smaller value is a new count, not a gap)."""
        if float(previous).is_integer() and float(value).is_integer() and value - previous > 1:
            self.parts_missed += int(value - previous - 1)
            self.counter_gaps += 1

    def _source_id(self, source: str) -> int:
        sid = self._src_ids.get(source)
        if sid is None:
            sid = self._src_ids[source] = len(self._src_ids) + 1
            self._alive = np.append(self._alive, -np.inf)
        return sid

    def latest(self, tag: str) -> float:
        i = self._index.get(tag)
        return float(self._value[i]) if i is not None else float("nan")

    def alive(self, source: str, ts: float) -> None:
        sid = self._source_id(source)  # first: it may grow (replace) the array
        self._alive[sid] = ts

    def _close_open(self) -> None:
        """Freeze the open trigger's inputs: every reading that arrived with it is included."""
        if self._open is None:
            return
        ts, part_id = self._open
        k = self._k
        seen = np.maximum(self._seen[:k], self._alive[self._src_of[:k]])
        seen[self._stale_q[:k]] = np.nan  # stale by the source's word, whatever its age
        self._snapshots.append((ts, part_id, self._value[:k].copy(), seen,
                                self._good[:k] | self._stale_q[:k]))
        self._open = None

    def due(self, now: float) -> SampleBatch:
        """Samples ready at ``now``: the triggers seen so far, or the periodic ticks passed."""
        if self.config.mode == "trigger":
            self._close_open()
            snaps, self._snapshots = self._snapshots, []
            if not snaps:
                return _EMPTY
            ts = np.array([s[0] for s in snaps])
            ids = [format_id(s[1]) if s[1] == s[1] else "" for s in snaps]
            return self._validate(now, ts, ids, np.stack([s[2] for s in snaps]),
                                  np.stack([s[3] for s in snaps]), np.stack([s[4] for s in snaps]))
        if self._next_tick is None:
            self._next_tick = now
        if now < self._next_tick:
            return _EMPTY
        period = self.config.period_s
        ticks = int((now - self._next_tick) // period) + 1
        if ticks > 10:  # after a stall, do not replay a flood of identical old ticks
            self._next_tick += (ticks - 10) * period
            ticks = 10
        ts = self._next_tick + period * np.arange(ticks)
        self._next_tick += ticks * period
        k = self._k
        seen = np.maximum(self._seen[:k], self._alive[self._src_of[:k]])
        seen[self._stale_q[:k]] = np.nan
        rows = np.broadcast_to(self._value[:k], (ticks, k))
        return self._validate(now, ts, [""] * ticks, rows, np.broadcast_to(seen, (ticks, k)),
                              np.broadcast_to(self._good[:k] | self._stale_q[:k], (ticks, k)))

    def next_deadline(self) -> float | None:
        return self._next_tick if self.config.mode == "periodic" else None

    def _validate(self, now: float, ts: np.ndarray, ids: list[str], values: np.ndarray,
                  seen: np.ndarray, good: np.ndarray) -> SampleBatch:
        said_stale = np.isnan(seen)  # the source marked it stale (a Sparkplug death)
        stale = ((now - seen) > self._max_age) | said_stale
        missing = np.isnan(values) & ~said_stale
        broken = missing | stale | ~good
        bad_rows = broken.any(axis=1)
        if bad_rows.any():
            for row in np.flatnonzero(bad_rows):  # only invalid samples pay for a Python loop
                col = int(np.flatnonzero(broken[row])[0])
                reason = ("missing" if missing[row, col] else
                          "stale" if stale[row, col] else "bad_quality")
                self.invalid[f"{reason}:{self.inputs[col]}"] += 1
            keep = ~bad_rows
            ts, values = ts[keep], values[keep]
            ids = [i for i, ok in zip(ids, keep.tolist(), strict=True) if ok]
        n = len(ids)
        if not n:
            return _EMPTY
        start = self._counter
        self._counter += n
        self.samples += n
        ids = [i or f"s{start + j + 1}" for j, i in enumerate(ids)]
        return SampleBatch(ids, np.asarray(ts, dtype=np.float64), values.astype(np.float32))

    @property
    def invalid_total(self) -> int:
        return sum(self.invalid.values())


_EMPTY = SampleBatch([], np.zeros(0), np.zeros((0, 0), dtype=np.float32))
