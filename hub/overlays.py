"""Remote configuration: settings the hub holds for a group or a gateway, merged over the
gateway's own YAML by the agent (which validates the result with the same models as its local
file and keeps the fields the plant pinned). The hub checks what it can without the base: a
mapping of known top-level sections, none of those that only the gateway may set."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.config import AgentConfig
from agent.config.overlay import ALWAYS_LOCAL, deep_merge
from hub.registry import HubError
from hub.storage import ConfigOverlay, record


def check_overlay(overlay: Any) -> dict[str, Any]:
    if not isinstance(overlay, dict):
        raise HubError("a config overlay is a mapping of agent config sections (YAML or JSON)")
    known = set(AgentConfig.model_fields) | {"model"}  # `model:`: the agent's one-model shorthand
    unknown = sorted(set(overlay) - known)
    if unknown:
        raise HubError(f"unknown agent config section(s): {', '.join(unknown)} "
                       "(edge-agent config-schema lists them)")
    local = sorted(set(overlay) & ALWAYS_LOCAL)
    if local:
        raise HubError(f"{', '.join(local)} can only be set in the gateway's own file")
    return overlay


def set_overlay(engine: Engine, target: str, overlay: Any, author: str, comment: str | None) -> int:
    doc = check_overlay(overlay)
    with Session(engine) as s, s.begin():
        row = ConfigOverlay(target=target, overlay=doc, created=time.time(), author=author,
                            comment=comment)
        s.add(row)
        s.flush()
        record(s, "-", "-", "config_overlay", gateway_id=None, actor=author,
               detail=f"{target}: {json.dumps(doc, sort_keys=True)}{' (' + comment + ')' if comment else ''}")
        return row.id


def current_overlays(s: Session) -> dict[str, dict[str, Any]]:
    """The newest overlay per target (an empty one clears it)."""
    out: dict[str, dict[str, Any]] = {}
    for row in s.scalars(select(ConfigOverlay).order_by(desc(ConfigOverlay.id))):
        out.setdefault(row.target, {"overlay": row.overlay, "id": row.id, "author": row.author,
                                    "comment": row.comment, "created": row.created})
    return out


def effective(overlays: dict[str, dict[str, Any]], gateway_id: str,
              group: str | None) -> dict[str, Any] | None:
    """The group's overlay with the gateway's own merged over it; None when there is none."""
    parts = [overlays.get(f"group:{group}") if group else None, overlays.get(gateway_id)]
    merged: dict[str, Any] = {}
    sources = []
    for part in parts:
        if part and part["overlay"]:
            merged = deep_merge(merged, part["overlay"])
            sources.append(f"{part['id']}")
    if not merged:
        return None
    version = hashlib.sha256(json.dumps(merged, sort_keys=True).encode()).hexdigest()[:16]
    return {"version": version, "overlay": merged, "from": sources}
