"""The running agent: builds the components, owns their lifecycle, moves data between them.

Startup order: outbox -> model -> sources and loops; shutdown is the reverse, and ends with a
final flush so that nothing already read is lost on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import deque
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from agent import __version__
from agent.aio.links import RateLimitedLog
from agent.aio.supervisor import ComponentHealth, supervise
from agent.config import AgentConfig, MqttLabelsConfig, OpcUaLabelsConfig
from agent.errors import AgentError, OutboxError
from agent.hublink.remote_config import RemoteConfig
from agent.hublink.sync import HubSync
from agent.hublink.training_data import TrainingSampler
from agent.hublink.uploader import Uploader
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.ingest.features import FeatureBuilder, TagSpec, format_id
from agent.ingest.labels import LabelListener
from agent.ingest.quality import ReadingCheck
from agent.ingest.sources import build_source
from agent.ingest.sources.opcua import OpcUaSource
from agent.models.lifecycle import ModelLifecycle
from agent.models.store import ModelStore
from agent.monitor.incidents import IncidentEvent, audit_record
from agent.monitor.watch import ModelWatch
from agent.outputs.publish import MqttPublisher, OpcUaWriteback
from agent.service.health import HealthServer
from agent.service.reporting import hub_report as status_hub_report
from agent.service.reporting import snapshot as status_snapshot
from agent.service.sdnotify import Notifier
from agent.store.audit import AuditLog
from agent.store.outbox import AsyncOutbox, NewRecord, OutboxStats
from agent.store.recording import Pending, outbox_records
from agent.types import Label, Quality, Reading

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


class Agent:
    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Agent:
        """The agent from the local file's settings, with the last good overlay from the hub
        merged over them (see remote_config)."""
        remote = RemoteConfig(raw)
        return cls(remote.startup_config(), remote)

    def __init__(self, config: AgentConfig, remote: RemoteConfig | None = None) -> None:
        self.config = config
        self.started = time.time()
        self.readings: deque[Reading] = deque()
        self.dropped_readings = 0
        self._drop_log = RateLimitedLog("reading queue full")
        self.intake = ReadingCheck(config.limits)  # bad readings by reason: intake.bad
        self._wake = asyncio.Event()
        self.sources = [build_source(s, config, self) for s in config.sources]
        self.health: dict[str, ComponentHealth] = {}
        self.model: LoadedModel | None = None
        self.model_error: str | None = None
        self.store: ModelStore | None = None
        self.lifecycle: ModelLifecycle | None = None
        self.sync: HubSync | None = None
        self._pending_shadow: list[PredictionBatch] = []
        self._pending_lifecycle: list[dict[str, Any]] = []
        self.builder: FeatureBuilder | None = None
        self.publisher = MqttPublisher(config.outputs.mqtt, config.gateway_id) if (
            config.outputs.mqtt) else None
        self.writeback: OpcUaWriteback | None = None
        self.sparkplug_out: Any = None
        if config.outputs.sparkplug is not None:  # optional dependency: imported only when used
            from agent.outputs.sparkplug import SparkplugPublisher

            self.sparkplug_out = SparkplugPublisher(
                config.outputs.sparkplug, config.gateway_id,
                health=lambda: self.watch.monitor.book.worst() if self.watch else "ok")
        self.labels = LabelListener(config.labels, config.gateway_id, self.on_label, config.limits) if (
            isinstance(config.labels, MqttLabelsConfig)) else None
        self.opcua_labels = config.labels if isinstance(config.labels, OpcUaLabelsConfig) else None
        self._label_trigger_value: float | None = None
        self.watch: ModelWatch | None = None
        self.events: list[IncidentEvent] = []  # incident events so far (the demo and tests read them)
        self._pending_events: list[dict[str, Any]] = []
        self.outbox: AsyncOutbox | None = None
        self.outbox_stats: OutboxStats | None = None
        self._pending_readings: list[Reading] = []
        self._pending_predictions: list[PredictionBatch] = []
        self._pending_labels: list[dict[str, Any]] = []
        self.predictions = 0
        self.labels_received = 0
        self.inference_errors = 0
        self.records_written = 0
        self.ready = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._writes: set[asyncio.Future[None]] = set()
        self.remote: RemoteConfig | None = remote
        if remote is not None:
            remote.attach(self)
        self.audit = AuditLog(config.state_dir / "audit.log")
        self._pending_audit: list[dict[str, Any]] = []
        self.sampler = TrainingSampler(config.training_data)
        self.notifier = Notifier()
        self.uploader: Uploader | None = None
        self.health_server = HealthServer(self, config.health.listen, config.health.port) if (
            config.health.enabled) else None
        self._rate = (time.monotonic(), 0)
        self.samples_per_s = 0.0
        # called with every inference batch (the demo's scoreboard, tests recording samples)
        self.prediction_listeners: list[Callable[[SampleBatch, PredictionBatch], None]] = []
        self.event_listeners: list[Callable[[IncidentEvent], None]] = []

    # -- ReadingSink: called by sources from the event loop, must not block ---------------
    def offer(self, reading: Reading) -> None:
        reading = self.intake.check(reading)  # the one place readings are judged (limits:)
        if len(self.readings) >= self.config.reading_queue:
            self.dropped_readings += 1  # counted drop: the pipeline cannot keep up
            self._drop_log.report("readings", f"reading queue full (reading_queue "
                                              f"{self.config.reading_queue}): reading dropped")
            return
        self.readings.append(reading)
        self._wake.set()

    def alive(self, source: str, ts: float) -> None:
        if self.builder is not None:
            self.builder.alive(source, ts)

    # -- lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.config
        try:
            cfg.state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"state_dir: cannot create {cfg.state_dir} ({exc.strerror}); make it "
                              "writable for the agent's user (systemd: StateDirectory=)") from None
        async with AsyncExitStack() as stack:
            self.outbox = await stack.enter_async_context(
                AsyncOutbox(cfg.outbox_path, cfg.outbox.disk_budget_bytes, cfg.outbox.synchronous))
            await self.outbox.catch_up_audit(self.audit)  # the log and its outbox copy agree
            await self._load_initial_model()
            async with asyncio.TaskGroup() as group:
                self._group = group
                start = self.start_component
                for src in self.sources:
                    start(f"source:{src.status.name}", src.run)
                start("pipeline", self._pipeline_loop)
                start("flusher", self._flush_loop)
                start("status", self._status_loop)
                if self.publisher:
                    start("mqtt-out", self.publisher.run)
                if self.writeback:
                    start("opcua-writeback", self.writeback.run)
                if self.sparkplug_out is not None:
                    start("sparkplug-out", self.sparkplug_out.run)
                if self.labels:
                    start("labels", self.labels.run)
                if self.health_server is not None:
                    start("health", self.health_server.run)
                if cfg.hub is not None:
                    self.uploader = Uploader(cfg.hub, cfg.gateway_id, self.outbox)
                    start("hub-upload", self.uploader.run)
                if cfg.hub is not None and cfg.hub.sync_models and self.lifecycle is not None:
                    self.sync = HubSync(cfg.hub, cfg.gateway_id, self.lifecycle, self.hub_report,
                                        on_config=self.remote.on_desired if self.remote else None)
                    start("hub-sync", self.sync.run)
                if self.notifier.watchdog_interval_s is not None:
                    self._tasks["watchdog"] = group.create_task(self._watchdog_loop(), name="watchdog")
                self.ready.set()
                # sources are connecting or retrying, the model is loaded, the outbox is open
                self.notifier.ready(self.status_line())
                log.info("agent %s %s running: %d source(s), model %s", cfg.gateway_id,
                         __version__, len(self.sources),
                         self.model.bundle.label if self.model else "none")
                await stop.wait()
                log.info("stopping: shutting components down in reverse order")
                self.notifier.stopping()
                for task in reversed(list(self._tasks.values())):
                    task.cancel()
            self._process_once()
            await self._flush()
            if self._writes:  # a write the cancelled flusher started: finish it before closing
                await asyncio.wait(set(self._writes), timeout=30)
            await self._write_status()
            if self.watch is not None:
                self.watch.close()
            if self.lifecycle is not None:
                self.lifecycle.clean_shutdown()
            self.notifier.close()

    def start_component(self, name: str, factory: Any) -> None:
        """Run a long-lived loop under a supervisor in the agent's task group."""
        assert self._group is not None
        health = self.health[name] = ComponentHealth(name)
        self._tasks.pop(name, None)  # re-inserted last: shutdown stays in reverse start order
        self._tasks[name] = self._group.create_task(supervise(name, factory, health), name=name)

    async def stop_component(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self.health.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=10)

    def status_line(self) -> str:
        connected = sum(1 for s in self.sources if s.status.connected)
        model = self.model.bundle.label if self.model else "no model"
        health = self.watch.monitor.book.worst() if self.watch else "-"
        depth = self.outbox_stats.depth if self.outbox_stats else 0
        return (f"{connected}/{len(self.sources)} sources, {model}, {self.predictions} predictions, "
                f"health {health}, outbox {depth}")

    def stuck_components(self, now: float | None = None) -> list[str]:
        """Loops whose heartbeat is older than they may be: the watchdog must then not ping."""
        now = time.monotonic() if now is None else now
        # each loop beats at least once per period; allow several missed beats before judging
        floor = 2 * (self.notifier.watchdog_interval_s or 1.0)
        periods = {"pipeline": max(1.0, self.config.features.period_s), "status": 2.0,
                   "flusher": self.config.outbox.flush_interval_s}
        limits = {name: max(5 * period, floor) for name, period in periods.items()}
        return [name for name, limit in limits.items()
                if name in self.health and now - self.health[name].heartbeat > limit]

    async def _watchdog_loop(self) -> None:
        """WATCHDOG=1 only while the event loop turns and every loop shows progress: a hung
        component stops the pings and systemd restarts the agent (WatchdogSec=)."""
        interval = self.notifier.watchdog_interval_s or 1.0
        while True:
            stuck = self.stuck_components()
            if stuck:
                log.error("not feeding the watchdog: %s made no progress", ", ".join(stuck))
            else:
                self.notifier.watchdog(self.status_line())
            await asyncio.sleep(interval)

    async def _load_initial_model(self) -> None:
        cfg = self.config
        self.store = ModelStore(cfg.state_dir, cfg.model.keep_versions, cfg.limits)
        self.lifecycle = ModelLifecycle(cfg, self.store, self.use_model, self._lifecycle_event)
        configured = None
        if cfg.model.bundle is not None:
            try:
                bundle = await asyncio.to_thread(self.store.install, cfg.model.bundle,
                                                 list(cfg.model.trusted_keys), cfg.model.allow_unsigned)
                configured = bundle.sha256
            except AgentError as exc:
                # keep reading and buffering data: an operator can fix the model without data loss
                self.model_error = str(exc)
                log.error("configured model refused: %s", exc)
        await self.lifecycle.start(configured)
        if self.model is None:
            self.model_error = (self.model_error or self.lifecycle.last_error
                                or "no model configured; waiting for one")
            log.error("agent runs without inference: %s", self.model_error)

    def use_model(self, model: LoadedModel) -> None:
        """Point the data path at this version (called by the lifecycle on every switch)."""
        same_inputs = self.model is not None and self.model.input_tags == model.input_tags
        if not same_inputs:
            self.builder = self.feature_builder(model)
        self.model = model
        self.model_error = None
        self.rebuild_watch(model)
        wb = self.config.outputs.opcua_writeback
        if wb is not None:
            writer = next(s for s in self.sources if isinstance(s, OpcUaSource)
                          and s.config.name == wb.source)
            if self.writeback is None:
                self.writeback = OpcUaWriteback(wb, writer, model.bundle.manifest.output.classes)
            else:
                self.writeback.classes = model.bundle.manifest.output.classes

    def rebuild_watch(self, model: LoadedModel) -> None:
        if self.watch is not None:
            self.watch.close()
            self.watch = None
        if self.config.monitoring.enabled:
            try:
                self.watch = ModelWatch(model, self.config.monitoring, self.config.state_dir)
            except ValueError as exc:  # a bundle without calibrated thresholds
                log.warning("monitoring off for %s: %s", model.bundle.label, exc)

    async def reconfigure(self, new: AgentConfig) -> list[str]:
        from agent.service.reconfigure import apply

        return await apply(self, new)

    def component_connected(self, name: str) -> bool:
        """For the grace period of a config change: is this component up?"""
        if name.startswith("source:"):
            return any(f"source:{s.status.name}" == name and s.status.connected for s in self.sources)
        holder = {"mqtt-out": self.publisher, "labels": self.labels,
                  "sparkplug-out": self.sparkplug_out}.get(name)
        return holder is None or holder.status.connected

    def feature_builder(self, model: LoadedModel) -> FeatureBuilder:
        specs = []
        max_age = {tag: age for src in self.config.sources for tag, age in src.max_ages().items()
                   if age}
        for tag in model.input_tags:
            specs.append(TagSpec(tag, max_age.get(tag, self.config.features.max_age_s)))
        extra = [self.opcua_labels.tag] if self.opcua_labels else []
        if self.opcua_labels and self.opcua_labels.sample_id_tag:
            extra.append(self.opcua_labels.sample_id_tag)
        return FeatureBuilder(specs, self.config.features, extra_tags=extra)

    # -- the data path -------------------------------------------------------------------------
    async def _pipeline_loop(self) -> None:
        health = self.health["pipeline"]
        while True:
            deadline = self.builder.next_deadline() if self.builder else None
            timeout = max(0.0, deadline - time.time()) if deadline is not None else 1.0
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that lands as its timeout fires, and the shutdown would hang
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            self._process_once()
            health.heartbeat = time.monotonic()

    def _process_once(self) -> None:
        """Drain every queued reading first, then build samples: a trigger that arrived in the
        same notification batch as the process values sees all of them."""
        queue = self.readings
        builder = self.builder
        keep = self.config.outbox.store_readings
        pending = self._pending_readings
        labels = self.opcua_labels
        label_trigger = (labels.sample_id_tag or labels.tag) if labels else None
        label_events: list[Reading] = []
        while queue:
            r = queue.popleft()
            if builder is not None:
                builder.update(r)
            if keep:
                pending.append(r)
            if r.tag == label_trigger:
                label_events.append(r)
        if len(pending) > self.config.reading_queue:
            # the outbox is not keeping up (a disk stall): bounded, counted, oldest first
            excess = len(pending) - self.config.reading_queue
            del pending[:excess]
            self.dropped_readings += excess
        for r in label_events:  # after the whole batch: the verdict that came with it is in
            self._opcua_label(r)
        if builder is None or self.model is None or self.lifecycle is None:
            return
        samples = builder.due(time.time())
        size = self.config.model.batch_max
        for start in range(0, len(samples), size):
            chunk = samples.slice(start, start + size) if len(samples) > size else samples
            try:
                started = time.perf_counter()
                predictions, out, shadow = self.lifecycle.infer(chunk)
                if self.health_server is not None:
                    self.health_server.latency.observe(time.perf_counter() - started)
            except AgentError as exc:
                self.inference_errors += 1
                log.error("inference failed on %d samples: %s", len(chunk), exc)
                continue
            self._deliver(predictions)
            if shadow is not None:  # recorded for the comparison, never published as a decision
                self._pending_shadow.append(shadow)
            if self.config.hub is not None:  # only what will reach a hub is worth keeping
                self.sampler.remember(chunk, predictions, self.model.input_tags)
            for listener in self.prediction_listeners:
                listener(chunk, predictions)
            if self.watch is not None:
                self._emit(self.watch.on_batch(chunk, predictions, out))

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

    def _emit(self, events: list[IncidentEvent]) -> None:
        """Incident events: what is not held back (shelved, flood guard) goes to the MQTT alarm
        topic; every one goes through the outbox to the hub; alarms, acknowledgements and
        shelving into the audit log."""
        for e in events:
            self.events.append(e)
            for listener in self.event_listeners:
                listener(e)
            doc = e.as_dict()
            self._pending_events.append(doc)
            if self.publisher is not None and e.suppressed is None:
                topic = self.config.monitoring.alarm_topic.format(
                    gateway_id=self.config.gateway_id, model=e.model, version=e.model_version)
                self.publisher.offer_raw(topic, json.dumps(doc, default=str).encode())
            audit = audit_record(e)
            if audit is not None:
                self.record_audit(audit[0], audit[1], f"{e.model} {e.model_version}", audit[2], audit[3])
            log.log(logging.WARNING if e.notify else logging.INFO,
                    "incident %s %s (%s, %s): %s", e.incident_id, e.action, e.level.upper(),
                    e.suppressed or ("notified" if e.notify else "recorded"), e.reason)

    def _lifecycle_event(self, doc: dict[str, Any]) -> None:
        self._pending_lifecycle.append(doc)  # the flusher swaps the list: never hold a reference
        self.record_audit(str(doc.get("actor") or "agent"), f"model_{doc['event']}",
                          f"{doc.get('model')} {doc.get('version')}", str(doc.get("reason") or ""),
                          {"sha256": doc.get("sha256"),
                           **({"to_version": doc["to_version"]} if "to_version" in doc else {})})

    def record_audit(self, actor: str, action: str, subject: str, why: str,
                     detail: dict[str, Any] | None = None) -> None:
        """Into the hash-chained log on disk, and through the outbox to the hub."""
        try:
            self._pending_audit.append(self.audit.append(actor, action, subject, why, detail))
        except OSError as exc:  # a full or read-only disk must not stop the line
            log.error("audit entry not written (%s): %s %s", exc, action, subject)

    def _deliver(self, predictions: PredictionBatch) -> None:
        self.predictions += len(predictions)
        if self.publisher is not None:
            self.publisher.offer(predictions)
        if self.writeback is not None:
            self.writeback.offer(predictions)
        if self.sparkplug_out is not None:
            self.sparkplug_out.offer(predictions)
        self._pending_predictions.append(predictions)

    def on_label(self, label: Label) -> None:
        self.labels_received += 1
        self._pending_labels.append({"id": label.sample_id, "label": label.value,
                                     "ts": label.timestamp})
        joined_id = label.sample_id
        if self.watch is not None:
            self._emit(self.watch.on_label(label))
            joined_id = self.watch.last_joined_id or joined_id
        if self.lifecycle is not None:
            self.lifecycle.on_label(joined_id, label.value)
            self.lifecycle.judge()
        if self.config.hub is not None and joined_id:
            drift = self.watch is not None and self.watch.monitor.book.worst() != "ok"
            self.sampler.labelled(joined_id, label.value, drift)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.outbox.flush_interval_s)
            await self._flush()
            self.health["flusher"].heartbeat = time.monotonic()

    async def _flush(self) -> None:
        if self.watch is not None:
            self.watch.flush()
        pending = Pending(self._pending_readings, self._pending_predictions, self._pending_shadow,
                          self._pending_lifecycle, self.sampler.take(), self._pending_audit,
                          self._pending_labels, self._pending_events)
        # the lists are handed over whole: what arrives from now on goes into fresh ones
        self._pending_readings, self._pending_predictions, self._pending_shadow = [], [], []
        self._pending_lifecycle, self._pending_audit = [], []
        self._pending_labels, self._pending_events = [], []
        records = outbox_records(pending)
        if records and self.outbox is not None:
            # shielded: the records are out of the pending lists now; a shutdown that cancels
            # the flusher mid-write must not cancel the write queued on the outbox thread
            write = asyncio.ensure_future(self._append(records))
            self._writes.add(write)
            write.add_done_callback(self._writes.discard)
            await asyncio.shield(write)

    async def _append(self, records: list[NewRecord]) -> None:
        assert self.outbox is not None
        await self.outbox.append(records)
        self.records_written += len(records)

    async def _status_loop(self) -> None:
        while True:
            if self.lifecycle is not None:
                await self.lifecycle.tick()
            if self.watch is not None:
                self._emit(self.watch.tick())
            await self._write_status()
            self.health["status"].heartbeat = time.monotonic()
            await asyncio.sleep(2.0)

    def snapshot(self) -> dict[str, Any]:
        return status_snapshot(self)

    def hub_report(self) -> dict[str, Any]:
        return status_hub_report(self)

    async def _write_status(self) -> None:
        if self.outbox is not None:
            self.outbox_stats = await self.outbox.stats()
        path = self.config.state_dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot(), indent=1, default=str))
        os.replace(tmp, path)  # readers never see a half-written file


def read_status(state_dir: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads((state_dir / STATUS_FILE).read_text())
        return data
    except (OSError, ValueError):
        return None
