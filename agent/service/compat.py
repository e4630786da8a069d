"""The one-model view of the agent that callers of the single-model release use (the demo,
benchmarks, tests): ``agent.model``, ``agent.watch``, ``agent.lifecycle``... are those of the
first model; counters are summed over all models. New code reads ``agent.units``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent.config import OpcUaLabelsConfig
    from agent.hublink.training_data import TrainingSampler
    from agent.inference.batches import PredictionBatch
    from agent.inference.model import LoadedModel
    from agent.ingest.features import FeatureBuilder
    from agent.ingest.labels import LabelListener
    from agent.models.lifecycle import ModelLifecycle
    from agent.models.store import ModelStore
    from agent.monitor.incidents import IncidentEvent
    from agent.monitor.watch import ModelWatch
    from agent.service.recorder import Recorder
    from agent.service.unit import ModelUnit
    from agent.types import Reading


class _Readings:
    """``agent.readings``: what waits for the first model; extending it offers readings."""

    def __init__(self, agent: FirstModel) -> None:
        self.agent = agent

    def __iter__(self) -> Iterator[Reading]:
        return iter(self.agent.units[0].channel)

    def __len__(self) -> int:
        return len(self.agent.units[0].channel)

    def append(self, reading: Reading) -> None:
        self.agent.offer(reading)

    def extend(self, readings: Iterable[Reading]) -> None:
        for r in readings:
            self.agent.offer(r)


class FirstModel:
    units: list[ModelUnit]
    recorder: Recorder
    label_listeners: dict[str, LabelListener]

    def offer(self, reading: Reading) -> None:
        raise NotImplementedError

    def _to_sinks(self, unit: ModelUnit, predictions: PredictionBatch) -> None:
        raise NotImplementedError

    def _publish_events(self, unit: ModelUnit, events: list[IncidentEvent]) -> None:
        raise NotImplementedError

    @property
    def model(self) -> LoadedModel | None:
        return self.units[0].model

    @property
    def model_error(self) -> str | None:
        return self.units[0].model_error

    @property
    def builder(self) -> FeatureBuilder | None:
        return self.units[0].builder

    @property
    def lifecycle(self) -> ModelLifecycle | None:
        return self.units[0].lifecycle

    @property
    def store(self) -> ModelStore | None:
        return self.units[0].store

    @property
    def sampler(self) -> TrainingSampler:
        return self.units[0].sampler

    @property
    def watch(self) -> ModelWatch | None:
        return self.units[0].watch

    @watch.setter
    def watch(self, value: ModelWatch | None) -> None:
        self.units[0].watch = value

    @property
    def opcua_labels(self) -> OpcUaLabelsConfig | None:
        return self.units[0].opcua_labels

    @property
    def labels(self) -> LabelListener | None:
        """The top-level label source's listener."""
        return self.label_listeners.get("labels")

    @property
    def predictions(self) -> int:
        return sum(u.predictions for u in self.units)

    @property
    def inference_errors(self) -> int:
        return sum(u.inference_errors for u in self.units)

    @property
    def labels_received(self) -> int:
        return sum(u.labels_received for u in self.units)

    @property
    def dropped_readings(self) -> int:
        return sum(u.channel.dropped for u in self.units) + self.recorder.readings_dropped

    @property
    def records_written(self) -> int:
        return self.recorder.records_written

    @property
    def readings(self) -> _Readings:
        return _Readings(self)

    @property
    def _pending_readings(self) -> list[Reading]:
        return self.recorder.pending.readings

    @property
    def _pending_events(self) -> list[dict[str, Any]]:
        return self.recorder.pending.events

    @property
    def _writes(self) -> Any:
        return self.recorder._writes

    def _process_once(self) -> None:
        for unit in self.units:
            unit.process_now()

    def _deliver(self, predictions: PredictionBatch) -> None:
        unit = self.units[0]
        unit.predictions += len(predictions)
        self._to_sinks(unit, predictions)
        self.recorder.predictions(predictions)

    def _emit(self, events: list[IncidentEvent]) -> None:
        self._publish_events(self.units[0], events)
