"""The OPC UA write-backs of the models: each model may write its own outputs to PLC nodes
(`models[].outputs.opcua_writeback`); the top-level `outputs.opcua_writeback` serves the first
model, as it did before there were several. A write-back is made when its model first loads
(a hub-managed model may arrive long after start) and follows the model's versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig, OpcUaWritebackConfig
from agent.inference.batches import PredictionBatch
from agent.inference.model import LoadedModel
from agent.ingest.sources.opcua import OpcUaSource
from agent.outputs.publish import OpcUaWriteback

if TYPE_CHECKING:
    from agent.service.unit import ModelUnit


def writeback_config(config: AgentConfig, unit: ModelUnit) -> OpcUaWritebackConfig | None:
    own = unit.entry.outputs.opcua_writeback
    if own is not None:
        return own
    return config.outputs.opcua_writeback if unit.entry is config.models[0] else None


class Writebacks:
    """One OpcUaWriteback per model that has one, by the model's state-folder name."""

    def __init__(self, config: AgentConfig, sources: list[Any],
                 start: Callable[[str, Callable[[], Any]], None]) -> None:
        self.config = config
        self._sources = sources
        self._start = start  # runs a write-back's loop in the agent's graph (once it runs)
        self.by_unit: dict[str, OpcUaWriteback] = {}
        self.running = False

    def on_model(self, unit: ModelUnit, model: LoadedModel) -> None:
        wb = writeback_config(self.config, unit)
        if wb is None:
            return
        classes = model.bundle.manifest.output.classes
        existing = self.by_unit.get(unit.dir_name)
        if existing is not None:
            existing.classes = classes
            return
        writer = next(s for s in self._sources if isinstance(s, OpcUaSource)
                      and s.config.name == wb.source)
        made = self.by_unit[unit.dir_name] = OpcUaWriteback(wb, writer, classes)
        if self.running:  # the model came after the graph started (from the hub)
            self._start(self.component(unit.dir_name), made.run)

    def start_all(self) -> None:
        self.running = True
        for name, wb in self.by_unit.items():
            self._start(self.component(name), wb.run)

    @staticmethod
    def component(unit_dir: str) -> str:
        return f"opcua-writeback:{unit_dir}"

    def offer(self, unit: ModelUnit, predictions: PredictionBatch) -> None:
        wb = self.by_unit.get(unit.dir_name)
        if wb is not None:
            wb.offer(predictions)
