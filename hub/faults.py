"""A pause point for crash tests: with ``EDGE_HUB_PAUSE_AT=NAME`` in its environment, the hub
stops at the named point (writing ``EDGE_HUB_PAUSE_FILE`` so the test knows) and waits there to
be killed. Unset, a pause point costs one dictionary lookup."""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_point(name: str) -> None:
    if os.environ.get("EDGE_HUB_PAUSE_AT") != name:
        return
    marker = os.environ.get("EDGE_HUB_PAUSE_FILE")
    if marker:
        Path(marker).write_text(f"{os.getpid()} paused at {name}\n")
    while True:  # until the test's kill -9
        time.sleep(1)


def slow_point(name: str) -> None:
    """With ``EDGE_HUB_SLOW_AT=NAME:SECONDS[,NAME:SECONDS]``, wait that long here: race tests
    widen the window between a decision read and its write (a lock must make it safe)."""
    spec = os.environ.get("EDGE_HUB_SLOW_AT")
    if not spec:
        return
    for item in spec.split(","):
        point, _, seconds = item.partition(":")
        if point == name:
            time.sleep(float(seconds or 0))
