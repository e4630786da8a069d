"""Is a reading any good? One check at the one place readings enter the pipeline, so every
source (OPC UA, MQTT, Sparkplug, replayed files) is judged by the same rules.

A reading that fails is not dropped: it goes on as bad quality (the features then count the
samples it spoils as invalid, by reason) and the refusal is counted here by reason, with one
rate-limited warning. The rules, each a setting under ``limits:``:

- the value is a finite number no larger in magnitude than ``value_max_abs`` (NaN, +-inf and
  +-1e300 are not measurements): reasons ``not_finite``, ``out_of_range``;
- the source timestamp is finite and within ``timestamp_max_ahead_s`` ahead of / ``..._behind_s``
  behind the receive time: reasons ``ts_not_finite``, ``ts_future``, ``ts_past``. The reading
  keeps the timestamp it came with (the outbox stores it exactly), so nothing is rewritten.

Text that claims to be a number is parsed by ``parse_decimal``: plain ASCII decimal notation
only, so Unicode digits (Arabic-Indic, full-width), digit separators ('1_000') and words are not numbers.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import replace

from agent.config.limits import DEFAULT_LIMITS, InputLimits
from agent.types import Quality, Reading

log = logging.getLogger(__name__)

REASONS = ("not_finite", "out_of_range", "ts_not_finite", "ts_future", "ts_past")
_DECIMAL = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_NON_FINITE = {"nan": math.nan, "+nan": math.nan, "-nan": math.nan, "inf": math.inf,
               "+inf": math.inf, "-inf": -math.inf, "infinity": math.inf,
               "+infinity": math.inf, "-infinity": -math.inf}


def parse_decimal(text: str) -> float:
    """A number written in plain ASCII decimal notation ('12', '-0.5', '1e-3'); 'nan' and
    'inf' give their float (the reading check then marks them bad). ValueError otherwise."""
    stripped = text.strip()
    if len(stripped) <= 400 and _DECIMAL.fullmatch(stripped):
        return float(stripped)
    special = _NON_FINITE.get(stripped.lower()) if len(stripped) <= 9 else None
    if special is not None:
        return special
    if stripped and any(ch.isdigit() for ch in stripped) and not stripped.isascii():
        raise ValueError(f"{stripped[:40]!r} has non-ASCII digits; not a plain decimal number")
    raise ValueError(f"{stripped[:40]!r} is not a number")


class ReadingCheck:
    """The intake rule for readings; ``bad`` counts refusals by reason (a fixed set of keys)."""

    def __init__(self, limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.max_abs = limits.value_max_abs
        self.ahead = limits.timestamp_max_ahead_s
        self.behind = limits.timestamp_max_behind_s
        self.bad: Counter[str] = Counter()

    def reason(self, r: Reading) -> str | None:
        value = r.value
        if not math.isfinite(value):
            # a source that already says bad (an OPC UA Bad status carries NaN) is not news
            return None if r.quality is Quality.BAD and math.isnan(value) else "not_finite"
        if abs(value) > self.max_abs:
            return "out_of_range"
        lag = r.receive_ts - r.source_ts
        if not math.isfinite(lag):
            return "ts_not_finite"
        if lag < -self.ahead:
            return "ts_future"
        if lag > self.behind:
            return "ts_past"
        return None

    def check(self, r: Reading) -> Reading:
        """The reading as it may enter the pipeline: unchanged, or marked bad and counted."""
        why = self.reason(r)
        if why is None:
            return r
        self.bad[why] += 1
        log.warning("reading %s/%s marked bad: %s (value %.6g, source time %.6g, received %.6g)",
                    r.source, r.tag, why, r.value, r.source_ts, r.receive_ts,
                    extra={"limit_key": f"bad-reading:{why}"})
        return r if r.quality is Quality.BAD else replace(r, quality=Quality.BAD)
