"""Config overlays from the hub: merged over the local YAML, never over a pinned field."""

from __future__ import annotations

import copy
from typing import Any

# set only in the gateway's own file: who it is and where it keeps its state
ALWAYS_LOCAL = frozenset({"gateway_id", "state_dir", "config_pins"})
# pinned unless the plant says otherwise: how the gateway reaches the hub at all
DEFAULT_PINS = ("hub",)


def deep_merge(base: dict[str, Any], overlay: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else (numbers, strings, lists) is replaced whole."""
    out = copy.deepcopy(base)
    for key, value in overlay.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def without_pinned(overlay: dict[str, Any], pins: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The overlay minus every pinned dotted path (and minus ALWAYS_LOCAL); what was dropped."""
    out = copy.deepcopy(overlay)
    dropped: list[str] = []
    for path in [*ALWAYS_LOCAL, *pins]:
        parts = path.split(".")
        node: Any = out
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict) and parts[-1] in node:
            del node[parts[-1]]
            dropped.append(path)
    return out, sorted(dropped)
