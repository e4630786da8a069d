"""One model of the gateway as a pipeline stage: its input channel (a fan-out of the intake),
feature builder, store under STATE/models/<name>/, lifecycle, watch (monitors, label join,
incidents), training sampler and counters, run by its own task. Inference runs on the unit's
own worker thread, so a slow or failing model holds up its own channel only: the others keep
their rate, and a full channel drops (and counts) that model's readings, nobody else's.

What leaves the unit goes through ``UnitPorts`` (the sinks and the recorder), and what the
rest of the agent learns about it is ``snapshot()`` and ``hub_entry()``."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from agent.aio.channel import Channel
from agent.config import AgentConfig, FeaturesConfig, ModelEntry, MonitoringConfig, OpcUaLabelsConfig
from agent.errors import AgentError
from agent.hublink.training_data import TrainingSampler
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.ingest.features import FeatureBuilder, TagSpec, format_id
from agent.models.batchrun import Computed
from agent.models.layout import model_dir
from agent.models.lifecycle import ModelLifecycle
from agent.models.store import ModelStore
from agent.monitor.incidents import IncidentEvent
from agent.monitor.watch import REQUESTS_DIR, ModelWatch
from agent.service.recorder import Recorder
from agent.types import Label, Quality, Reading

log = logging.getLogger(__name__)


@dataclass
class UnitPorts:
    """Where a unit's output goes; the agent wires them to its sinks."""

    record: Recorder  # predictions, shadow predictions, labels
    deliver: Callable[[ModelUnit, PredictionBatch], None]  # MQTT, OPC UA write-back, Sparkplug
    emit: Callable[[ModelUnit, list[IncidentEvent]], None]  # alarms: MQTT, outbox, audit
    lifecycle_event: Callable[[dict[str, Any]], None]
    prediction_listeners: list[Callable[[SampleBatch, PredictionBatch], None]] = field(
        default_factory=list)
    observe_latency: Callable[[str, float], None] | None = None


class ModelUnit:
    def __init__(self, entry: ModelEntry, config: AgentConfig, ports: UnitPorts, dir_name: str,
                 opcua_writeback: Callable[[ModelUnit, LoadedModel], None] | None = None) -> None:
        self.entry = entry
        self.config = config
        self.ports = ports
        self.dir_name = dir_name  # STATE/models/<dir_name>/
        self.channel: Channel[Reading] = Channel(f"readings:{dir_name}", config.reading_queue)
        self.store: ModelStore | None = None
        self.lifecycle: ModelLifecycle | None = None
        self.model: LoadedModel | None = None
        self.model_error: str | None = None
        self.builder: FeatureBuilder | None = None
        self.watch: ModelWatch | None = None
        self.sampler = TrainingSampler(config.training_data)
        self.predictions = 0
        self.inference_errors = 0
        self.labels_received = 0
        self.samples_per_s = 0.0
        self._rate = (time.monotonic(), 0)
        self.heartbeat = time.monotonic()  # each turn of the loop: the watchdog reads it
        self._label_trigger_value: float | None = None
        self._on_model = opcua_writeback
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{dir_name}")

    # -- identity and per-model settings -------------------------------------------------------
    @property
    def name(self) -> str:
        """The config's name; for the `model:` shorthand, the active bundle's."""
        if self.entry.name is not None:
            return self.entry.name
        return self.model.name if self.model is not None else self.dir_name

    @property
    def features(self) -> FeaturesConfig:
        return self.config.features_of(self.entry)

    @property
    def monitoring(self) -> MonitoringConfig:
        return self.config.monitoring_of(self.entry)

    @property
    def opcua_labels(self) -> OpcUaLabelsConfig | None:
        labels = self.config.labels_of(self.entry)
        return labels if isinstance(labels, OpcUaLabelsConfig) else None

    def reconfigure(self, config: AgentConfig, entry: ModelEntry) -> list[str]:
        """A new config for this model: what changed is rebuilt (features, monitoring, policy)."""
        old_features, old_monitoring = self.features, self.monitoring
        self.config, self.entry = config, entry
        changed = []
        if self.features != old_features and self.model is not None:
            self.builder = self.feature_builder(self.model)
            changed.append("features")
        if self.monitoring != old_monitoring and self.model is not None:
            self.rebuild_watch(self.model)
            changed.append("monitoring")
        if self.lifecycle is not None:
            self.lifecycle.config, self.lifecycle.policy = entry, entry.rollback
            self.lifecycle.store.keep = entry.keep_versions
        return changed

    # -- starting and switching ------------------------------------------------------------------
    async def start(self) -> None:
        cfg, entry = self.config, self.entry
        self.store = ModelStore(cfg.state_dir, entry.keep_versions, cfg.limits, name=self.dir_name)
        self.lifecycle = ModelLifecycle(entry, self.store, self.use_model, self.ports.lifecycle_event,
                                        name=entry.name)
        configured = None
        if entry.bundle is not None:
            try:
                bundle = await asyncio.to_thread(self.store.install, entry.bundle,
                                                 list(entry.trusted_keys), entry.allow_unsigned)
                refusal = self.lifecycle.name_refusal(bundle.manifest.name)
                if refusal:
                    raise AgentError(f"{entry.bundle}: {refusal}")
                configured = bundle.sha256
            except AgentError as exc:
                # keep reading and buffering data: an operator can fix the model without data loss
                self.model_error = str(exc)
                log.error("configured model of %s refused: %s", self.name, exc)
        await self.lifecycle.start(configured)
        if self.model is None:
            self.model_error = (self.model_error or self.lifecycle.last_error
                                or "no model configured; waiting for one")
            log.error("model %s runs without inference: %s", self.name, self.model_error)

    def use_model(self, model: LoadedModel) -> None:
        """Point this unit's data path at this version (the lifecycle calls it on every switch)."""
        same_inputs = self.model is not None and self.model.input_tags == model.input_tags
        if not same_inputs or self.builder is None:
            self.builder = self.feature_builder(model)
        self.model = model
        self.model_error = None
        self.rebuild_watch(model)
        if self._on_model is not None:
            self._on_model(self, model)

    def rebuild_watch(self, model: LoadedModel) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        if self.monitoring.enabled:
            try:
                self.watch = ModelWatch(model, self.monitoring,
                                        model_dir(self.config.state_dir, self.dir_name),
                                        requests_dir=self.config.state_dir / REQUESTS_DIR)
            except ValueError as exc:  # a bundle without calibrated thresholds
                log.warning("monitoring off for %s: %s", model.bundle.label, exc)

    def feature_builder(self, model: LoadedModel) -> FeatureBuilder:
        max_age = {tag: age for src in self.config.sources for tag, age in src.max_ages().items()
                   if age}
        features = self.features
        specs = [TagSpec(tag, max_age.get(tag, features.max_age_s)) for tag in model.input_tags]
        labels = self.opcua_labels
        extra = [labels.tag] if labels else []
        if labels and labels.sample_id_tag:
            extra.append(labels.sample_id_tag)
        return FeatureBuilder(specs, features, extra_tags=extra)

    # -- the data path -------------------------------------------------------------------------
    def alive(self, source: str, ts: float) -> None:
        if self.builder is not None:
            self.builder.alive(source, ts)

    async def run(self) -> None:
        """Until the channel is closed and drained: readings in, predictions out."""
        loop = asyncio.get_running_loop()
        while True:
            deadline = self.builder.next_deadline() if self.builder else None
            timeout = max(0.0, deadline - time.time()) if deadline is not None else 1.0
            await self.channel.wait(timeout)
            self.heartbeat = time.monotonic()
            closed = self.channel.closed
            for chunk in self.take():
                computed = await loop.run_in_executor(self._executor, self._compute, chunk)
                self._settle(chunk, computed)
            if closed and not len(self.channel):
                return

    def take(self) -> list[SampleBatch]:
        """Drain the channel into the feature builder, then cut what is due into batches."""
        readings = self.channel.take_all()
        builder = self.builder
        labels = self.opcua_labels
        label_trigger = (labels.sample_id_tag or labels.tag) if labels else None
        label_events: list[Reading] = []
        for r in readings:
            if builder is not None:
                builder.update(r)
            if r.tag == label_trigger:
                label_events.append(r)
        for r in label_events:  # after the whole batch: the verdict that came with it is in
            self._opcua_label(r)
        if builder is None or self.model is None or self.lifecycle is None:
            return []
        samples = builder.due(time.time())
        size = self.entry.batch_max
        if len(samples) <= size:
            return [samples] if len(samples) else []
        return [samples.slice(s, s + size) for s in range(0, len(samples), size)]

    def process_now(self) -> None:
        """The whole path synchronously, on the caller's thread (benchmarks, final drain)."""
        for chunk in self.take():
            self._settle(chunk, self._compute(chunk))

    def _compute(self, chunk: SampleBatch) -> tuple[Computed, float]:
        """On the unit's worker thread: the models' work, timed."""
        assert self.lifecycle is not None
        started = time.perf_counter()
        return self.lifecycle.compute(chunk), time.perf_counter() - started

    def _settle(self, chunk: SampleBatch, computed: tuple[Computed, float]) -> None:
        """Back on the event loop: judge, count, deliver."""
        result, elapsed = computed
        assert self.lifecycle is not None
        try:
            predictions, out, shadow = self.lifecycle.settle(chunk, result)
        except AgentError as exc:
            self.inference_errors += 1
            log.error("inference of %s failed on %d samples: %s", self.name, len(chunk), exc)
            return
        if self.ports.observe_latency is not None:
            self.ports.observe_latency(self.name, elapsed)
        self.predictions += len(predictions)
        self.ports.deliver(self, predictions)
        self.ports.record.predictions(predictions)
        if shadow is not None:  # recorded for the comparison, never published as a decision
            self.ports.record.shadow(shadow)
        if self.config.hub is not None and self.model is not None:  # only what reaches a hub
            self.sampler.remember(chunk, predictions, self.model.input_tags)
        for listener in self.ports.prediction_listeners:
            listener(chunk, predictions)
        if self.watch is not None:
            self.ports.emit(self, self.watch.on_batch(chunk, predictions, out))

    def _opcua_label(self, trigger: Reading) -> None:
        labels = self.opcua_labels
        assert labels is not None and self.builder is not None
        if trigger.quality != Quality.GOOD:
            return
        previous = self._label_trigger_value
        self._label_trigger_value = trigger.value
        if previous is None:
            return  # the value present at subscription time is a state, not a new verdict
        raw = self.builder.latest(labels.tag) if labels.sample_id_tag else trigger.value
        if raw != raw:
            return
        key = format_id(raw)
        value = labels.values.get(key, key)
        sample_id = format_id(trigger.value) if labels.sample_id_tag else ""
        self.on_label(Label(sample_id, value, trigger.source_ts))

    def on_label(self, label: Label) -> None:
        self.labels_received += 1
        self.ports.record.label({"id": label.sample_id, "label": label.value,
                                 "ts": label.timestamp, "model": self.name})
        joined_id = label.sample_id
        if self.watch is not None:
            self.ports.emit(self, self.watch.on_label(label))
            joined_id = self.watch.last_joined_id or joined_id
        if self.lifecycle is not None:
            self.lifecycle.on_label(joined_id, label.value)
            self.lifecycle.judge()
        if self.config.hub is not None and joined_id:
            drift = self.watch is not None and self.watch.monitor.book.worst() != "ok"
            self.sampler.labelled(joined_id, label.value, drift)

    # -- periodic work ---------------------------------------------------------------------------
    def flush(self) -> None:
        if self.watch is not None:
            self.watch.flush()

    async def tick(self) -> None:
        if self.lifecycle is not None:
            await self.lifecycle.tick()
        if self.watch is not None:
            self.ports.emit(self, self.watch.tick())

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        if self.lifecycle is not None:
            self.lifecycle.clean_shutdown()
        self._executor.shutdown(wait=False)

    # -- what others read --------------------------------------------------------------------------
    def health(self) -> str | None:
        return self.watch.monitor.book.worst() if self.watch else None

    def rate(self) -> float:
        """Samples per second since the last call at least a second ago (the status loop's)."""
        now, samples = time.monotonic(), self.builder.samples if self.builder else 0
        then, before = self._rate
        if now - then >= 1.0:
            self.samples_per_s = (samples - before) / (now - then)
            self._rate = (now, samples)
        return self.samples_per_s

    def metrics(self) -> dict[str, Any]:
        b = self.builder
        return {"predictions": self.predictions, "samples_per_s": round(self.samples_per_s, 3),
                "inference_errors": self.inference_errors, "labels": self.labels_received,
                "samples": b.samples if b else 0, "parts_missed": b.parts_missed if b else 0,
                "invalid_samples": dict(b.invalid) if b else {},
                "dropped_readings": self.channel.dropped,
                "unknown_labels": self.sampler.unknown_labels,
                "monitor": self.watch.figures() if self.watch else None}

    def snapshot(self) -> dict[str, Any]:
        """This model in status.json."""
        active = None
        if self.model is not None:
            b = self.model.bundle
            active = {"name": b.manifest.name, "version": b.manifest.version, "sha256": b.sha256,
                      "signed_by": b.signed_by}
        return {"name": self.name, "model": active, "model_error": self.model_error,
                "health": self.health(), "channel": self.channel.snapshot().as_dict(),
                **self.metrics(),
                "lifecycle": self.lifecycle.report() if self.lifecycle else None}

    def hub_entry(self, refused: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """This model in the hub's status report (the contract's `models` entry)."""
        report = self.lifecycle.report() if self.lifecycle else {
            "active": None, "watch": None, "shadow": None, "rejected": [], "last_error": None}
        return {"name": self.name, "active": report["active"], "shadow": report["shadow"],
                "watch": report["watch"], "rejected": report["rejected"] + list(refused or []),
                "alarms": self.watch.monitor.book.active() if self.watch else None,
                "health": self.health(), "metrics": self.metrics(),
                "last_error": self.model_error or report["last_error"]}
