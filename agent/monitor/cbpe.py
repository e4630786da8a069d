"""CBPE's window: the expected accuracy from the model's own confidence, a label-free early
warning, evaluated every ``every`` samples once a window of them is full."""

from __future__ import annotations

import numpy as np

from agent.monitor.detectors import RingMean


def drops(ring: RingMean, confidence: np.ndarray, first: int, every: int, window: int,
          reference: float) -> tuple[list[tuple[int, float]], float | None]:
    """Feed ``confidence`` (samples ``first``..) to ``ring``; the drop of the window's expected
    accuracy against the held-out ``reference`` at each evaluation point, (index, drop), and
    the last expected accuracy evaluated (None if no point was reached)."""
    if len(confidence) <= window:  # the usual batch: one feed, the window's total at each point
        seen = ring.seen
        totals = ring.running_totals(confidence)
        # rows whose sample closes an evaluation period, once a window of samples is in
        points = [p for p in range((every - (first + 1) % every) % every, len(confidence), every)
                  if seen + p + 1 >= window]
        out = [(first + p, reference - float(totals[p]) / window) for p in points]
        return out, float(totals[points[-1]]) / window if points else None
    out = []
    expected: float | None = None
    pos = 0
    while pos < len(confidence):
        step = min(every - ((first + pos) % every), len(confidence) - pos)
        ring.update(confidence[pos:pos + step])
        pos += step
        if (first + pos) % every or ring.seen < window:
            continue
        expected = ring.mean
        out.append((first + pos - 1, reference - expected))
    return out, expected
