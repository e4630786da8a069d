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
    out: list[tuple[int, float]] = []
    expected: float | None = None
    for at in range(0, len(confidence), window):  # one feed per window's worth of samples
        part = confidence[at:at + window]
        start, seen = first + at, ring.seen
        totals = ring.running_totals(part)
        # rows whose sample closes an evaluation period, once a window of samples is in
        points = [p for p in range((every - (start + 1) % every) % every, len(part), every)
                  if seen + p + 1 >= window]
        out += [(start + p, reference - float(totals[p]) / window) for p in points]
        if points:
            expected = float(totals[points[-1]]) / window
    return out, expected
