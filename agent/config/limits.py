"""Limits on what enters the agent from outside, as settings (``limits:`` in the config), and the
checks that enforce them on JSON text: payloads over MQTT, bundle manifests, hub bodies.

Every limit has a safe default; going over one is a clear refusal (a counted drop or an error
naming the place), never a crash. ``docs/hostile-input.md`` lists them all. The hub uses the
same checks on what gateways send it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import Field

from agent.config.common import Strict

MIB = 1 << 20
# the largest magnitude a float64 holds every integer up to: beyond it a counter or a sensor
# value has lost its own units, and float32 models see it as noise or infinity
MAX_EXACT_FLOAT = float(2**53)


class InputLimits(Strict):
    json_max_depth: int = Field(32, ge=2, le=1000, description=(
        "Deepest nesting of arrays and objects accepted in a JSON payload or bundle manifest."))
    payload_max_bytes: int = Field(1 * MIB, ge=64, le=256 * MIB, description=(
        "Largest MQTT payload read; a larger one is counted as malformed and skipped."))
    value_max_abs: float = Field(MAX_EXACT_FLOAT, gt=0, description=(
        "A reading whose magnitude exceeds this is bad quality (reason out_of_range)."))
    timestamp_max_ahead_s: float = Field(86400.0, ge=0, description=(
        "A source timestamp further ahead of the receive time is bad quality (ts_future)."))
    timestamp_max_behind_s: float = Field(30 * 86400.0, ge=0, description=(
        "A source timestamp further behind the receive time is bad quality (ts_past)."))
    bundle_max_bytes: int = Field(512 * MIB, ge=MIB, le=1 << 40, description=(
        "Largest model bundle, unpacked (archives are measured while they decompress)."))
    bundle_max_files: int = Field(32, ge=2, le=10_000, description=(
        "Most files in a model bundle (manifest and signature included)."))
    bundle_max_ratio: float = Field(200.0, ge=1, description=(
        "Largest unpacked / packed size ratio of a compressed bundle archive (a decompression "
        "bomb is refused before it fills the disk)."))
    manifest_max_bytes: int = Field(16 * MIB, ge=4096, le=1 << 30, description=(
        "Largest manifest.json of a bundle."))


DEFAULT_LIMITS = InputLimits()


class InputLimitError(ValueError):
    """Input over one of the limits; the message names the limit and its setting."""


# a string (with escapes) or one bracket: what a depth scan must tell apart
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def json_depth(data: bytes) -> int:
    """Deepest nesting of arrays and objects in JSON text (strings are skipped)."""
    depth = deepest = 0
    for match in _JSON_TOKENS.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


def check_json_depth(data: bytes, max_depth: int) -> None:
    # counting brackets is C speed; only text with more brackets than the limit is scanned
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return
    depth = json_depth(data)
    if depth > max_depth:
        raise InputLimitError(f"JSON nested {depth} deep, more than limits.json_max_depth "
                              f"({max_depth})")


def loads_json(data: bytes | str, max_depth: int = DEFAULT_LIMITS.json_max_depth,
               max_bytes: int = DEFAULT_LIMITS.payload_max_bytes) -> Any:
    """json.loads with a size and a depth limit (deep nesting would exhaust the C stack's
    recursion guard and end in RecursionError). Raises InputLimitError or ValueError."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if len(raw) > max_bytes:
        raise InputLimitError(f"{len(raw)} bytes, more than the limit of {max_bytes}")
    check_json_depth(raw, max_depth)
    return json.loads(raw)
