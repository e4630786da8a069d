"""Small immutable records that cross the seams between components."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"
    STALE = "stale"


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one tag, as a source delivered it."""

    source: str
    tag: str
    value: float
    source_ts: float  # epoch seconds, the device's own clock (receive time when it sends none)
    receive_ts: float  # epoch seconds, this gateway's clock
    quality: Quality = Quality.GOOD


@dataclass(frozen=True, slots=True)
class Sample:
    """One model input vector, in the order the bundle declares its inputs."""

    sample_id: str
    timestamp: float
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Prediction:
    """What the model said about one sample, with enough lineage to trace it later."""

    sample_id: str
    sample_ts: float
    predicted_ts: float
    model_name: str
    model_version: str
    bundle_sha256: str
    inputs_hash: str
    outputs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for a sample, arriving later (a QC station, a lab result)."""

    sample_id: str
    value: Any
    timestamp: float
