"""The agent's pipeline graph, built from the config: which models run (and where each keeps
its state), which label source feeds which model, and the upgrade of a single-model state
directory. The Agent wires these stages together; nothing here runs a loop."""

from __future__ import annotations

import logging
from collections.abc import Callable

from agent.config import AgentConfig, LabelsConfig, MqttLabelsConfig
from agent.ingest.labels import LabelListener
from agent.models.layout import (
    WORK_PREFIX,
    model_dir,
    old_active_name,
    old_layout,
    shorthand_dir_name,
    upgrade,
)
from agent.service.unit import ModelUnit
from agent.types import Label

log = logging.getLogger(__name__)


def unit_dir_names(config: AgentConfig) -> list[str]:
    """STATE/models/<name>/ of each entry: its name; the shorthand's comes from its state or bundle."""
    return [entry.name or shorthand_dir_name(config.state_dir, entry.bundle)
            for entry in config.models]


def upgrade_state(config: AgentConfig, dir_names: list[str]) -> str | None:
    """Move a single-model state (release 0.x) into the folder of the model it ran; returns the
    folder's name when it did."""
    interrupted = sorted((config.state_dir / "models").glob(f"{WORK_PREFIX}*"))
    if not old_layout(config.state_dir) and not interrupted:
        return None
    # an upgrade a crash interrupted is finished for the model it began with
    name = (interrupted[0].name.removeprefix(WORK_PREFIX) if interrupted
            else old_active_name(config.state_dir) or dir_names[0])
    if name not in dir_names:
        log.warning("state upgrade: the single-model state belongs to model %s, which no entry of "
                    "models: names; it is kept in %s", name, model_dir(config.state_dir, name))
    return name if upgrade(config.state_dir, name) else None


class LabelRoute:
    """One label source and the models it feeds (the top-level `labels:` feeds every model
    without its own)."""

    def __init__(self, key: str, config: LabelsConfig, units: list[ModelUnit]) -> None:
        self.key, self.config, self.units = key, config, units

    def deliver(self, label: Label) -> None:
        for unit in self.units:
            unit.on_label(label)


def label_listeners(config: AgentConfig, units: list[ModelUnit],
                    on_label: Callable[[LabelRoute, Label], None]) -> dict[str, LabelListener]:
    """MQTT label listeners by component name: 'labels' for the top-level source, 'labels:NAME'
    for a model's own."""
    routes: dict[str, LabelRoute] = {}
    for unit in units:
        labels = config.labels_of(unit.entry)
        if not isinstance(labels, MqttLabelsConfig):
            continue
        key = "labels" if unit.entry.labels is None else f"labels:{unit.dir_name}"
        routes.setdefault(key, LabelRoute(key, labels, [])).units.append(unit)
    out = {}
    for key, route in routes.items():
        assert isinstance(route.config, MqttLabelsConfig)
        out[key] = LabelListener(route.config, config.gateway_id, _bound(on_label, route),
                                 config.limits, name=key.replace(":", "-"))
    return out


def _bound(on_label: Callable[[LabelRoute, Label], None], route: LabelRoute) -> Callable[[Label], None]:
    def deliver(label: Label) -> None:
        on_label(route, label)
    return deliver
