"""The three models of the multi-model benchmarks, all on the simulated line's tags: the quality
classifier (moulding-nok), the cycle-time regressor (cycle-time), and a second quality model on
other tags (nok-barrel: barrel temperatures, pressure and cushion only, as a plant may run a
cheaper model beside the full one). Returns agent `models:` entries with their bundles on disk."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.demo.bundles import prepare_cycle_time, prepare_quality, signing_keys
from agent.demo.config import cycle_entry, quality_entry

BARREL_MODEL = "nok-barrel"
BARREL_TAGS = ["barrel_temp_1", "barrel_temp_2", "barrel_temp_3", "injection_pressure", "cushion"]
NAMES = ("moulding-nok", "cycle-time", BARREL_MODEL)


def model_entries(work: Path, count: int, mqtt_port: int) -> list[dict[str, Any]]:
    """The first ``count`` (1 to 3) of the models above as `models:` entries with local bundles."""
    if not 1 <= count <= len(NAMES):
        raise ValueError(f"--models: 1 to {len(NAMES)}, not {count}")
    _, pub = signing_keys(work)
    entries = [quality_entry(pub, prepare_quality(work, "1.0.0", seed=1))]
    if count >= 2:
        entries.append(cycle_entry(pub, prepare_cycle_time(work), mqtt_port))
    if count >= 3:
        barrel = prepare_quality(work, "1.0.0", seed=4, name=BARREL_MODEL, inputs=BARREL_TAGS)
        entries.append(quality_entry(pub, barrel, name=BARREL_MODEL))
    return entries
