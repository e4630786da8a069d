"""The running agent: builds the pipeline graph from the config and runs it in one task group.

    sources -> intake (ReadingCheck) -> one bounded channel per model -> model units
            -> sinks (MQTT, OPC UA write-back, Sparkplug) and the outbox recorder

Startup order: outbox -> state upgrade -> models -> sinks, sources and loops. Shutdown drains
the graph in order: the sources stop, each model's channel closes and its unit works through
what is queued, then the other loops stop and a final flush writes what the stages handed the
recorder, so nothing already read is lost on SIGTERM.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from agent import __version__
from agent.aio.supervisor import ComponentHealth, supervise
from agent.config import AgentConfig
from agent.errors import OutboxError
from agent.hublink.remote_config import RemoteConfig
from agent.hublink.sync import HubSync
from agent.hublink.uploader import Uploader
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel
from agent.ingest.labels import LabelListener
from agent.ingest.quality import ReadingCheck
from agent.ingest.sources import build_source
from agent.monitor.incidents import IncidentEvent, audit_record
from agent.outputs.publish import MqttPublisher, OpcUaWriteback
from agent.service import liveness
from agent.service.compat import FirstModel
from agent.service.graph import LabelRoute, label_listeners, unit_dir_names, upgrade_state
from agent.service.health import HealthServer
from agent.service.recorder import Recorder
from agent.service.reporting import hub_report as status_hub_report
from agent.service.reporting import snapshot as status_snapshot
from agent.service.sdnotify import Notifier
from agent.service.unit import ModelUnit, UnitPorts
from agent.service.writebacks import Writebacks
from agent.store.audit import AuditLog
from agent.store.outbox import AsyncOutbox, OutboxStats
from agent.types import Label, Reading

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


class Agent(FirstModel):
    @classmethod
    def from_raw(cls, raw: dict[str, Any]) -> Agent:
        """The agent from the local file's settings, with the last good overlay from the hub
        merged over them (see remote_config)."""
        remote = RemoteConfig(raw)
        return cls(remote.startup_config(), remote)

    def __init__(self, config: AgentConfig, remote: RemoteConfig | None = None) -> None:
        self.config = config
        self.started = time.time()
        self.intake = ReadingCheck(config.limits)  # bad readings by reason: intake.bad
        self.offered = 0  # readings the sources offered (before the intake's verdict)
        self.sources = [build_source(s, config, self) for s in config.sources]
        self.health: dict[str, ComponentHealth] = {}
        self.audit = AuditLog(config.state_dir / "audit.log")
        self.recorder = Recorder(self.audit, config.reading_queue, config.outbox.store_readings)
        self.events: list[IncidentEvent] = []  # incident events so far (the demo and tests read them)
        # called with every inference batch (the demo's scoreboard, tests recording samples)
        self.prediction_listeners: list[Callable[[SampleBatch, PredictionBatch], None]] = []
        self.event_listeners: list[Callable[[IncidentEvent], None]] = []
        ports = UnitPorts(self.recorder, self._to_sinks, self._publish_events, self._lifecycle_event,
                          self.prediction_listeners, self._observe_latency)
        self.units = [ModelUnit(entry, config, ports, name, self._on_model)
                      for entry, name in zip(config.models, unit_dir_names(config), strict=True)]
        for unit in self.units:
            self.recorder.training_sources.append(unit.sampler.take)
        self.publisher = MqttPublisher(config.outputs.mqtt, config.gateway_id) if (
            config.outputs.mqtt) else None
        self.writebacks = Writebacks(config, self.sources, self.start_component)
        self.sparkplug_out: Any = None
        if config.outputs.sparkplug is not None:  # optional dependency: imported only when used
            from agent.outputs.sparkplug import SparkplugPublisher

            self.sparkplug_out = SparkplugPublisher(config.outputs.sparkplug, config.gateway_id,
                                                    health=self.worst_health, limits=config.limits)
        self.label_listeners: dict[str, LabelListener] = label_listeners(config, self.units,
                                                                         self._on_route_label)
        self._outbox: AsyncOutbox | None = None
        self.outbox_stats: OutboxStats | None = None
        self.ready = asyncio.Event()
        self._group: asyncio.TaskGroup | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.sync: HubSync | None = None
        self.remote: RemoteConfig | None = remote
        if remote is not None:
            remote.attach(self)
        self.notifier = Notifier()
        self.uploader: Uploader | None = None
        self.health_server = HealthServer(self, config.health.listen, config.health.port) if (
            config.health.enabled) else None

    @property
    def outbox(self) -> AsyncOutbox | None:
        return self._outbox

    @outbox.setter
    def outbox(self, outbox: AsyncOutbox | None) -> None:
        self._outbox = self.recorder.outbox = outbox  # the recorder writes where the agent opened

    # -- ReadingSink: called by sources from the event loop, must not block ---------------
    def offer(self, reading: Reading) -> None:
        self.offered += 1
        reading = self.intake.check(reading)  # the one place readings are judged (limits:)
        self.recorder.reading(reading)
        for unit in self.units:  # fan-out: a full channel drops for its own model only
            unit.channel.put(reading)

    def alive(self, source: str, ts: float) -> None:
        for unit in self.units:
            unit.alive(source, ts)

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
                self._start_graph()
                self.ready.set()
                # sources are connecting or retrying, the models are loaded, the outbox is open
                self.notifier.ready(self.status_line())
                log.info("agent %s %s running: %d source(s), models %s", cfg.gateway_id,
                         __version__, len(self.sources), ", ".join(
                             f"{u.name} {u.model.version if u.model else '(none)'}" for u in self.units))
                await stop.wait()
                log.info("stopping: sources first, then each model drains its channel")
                self.notifier.stopping()
                await self._drain()
            await self.recorder.flush()
            await self.recorder.finish()
            await self._write_status()
            for unit in self.units:
                unit.close()
            self.notifier.close()

    def _start_graph(self) -> None:
        cfg, start = self.config, self.start_component
        for src in self.sources:
            start(f"source:{src.status.name}", src.run)
        for key, listener in self.label_listeners.items():
            start(key, listener.run)
        for unit in self.units:
            start(f"model:{unit.dir_name}", unit.run, finite=True)
        start("flusher", self._flush_loop)
        start("status", self._status_loop)
        if self.publisher:
            start("mqtt-out", self.publisher.run)
        self.writebacks.start_all()
        if self.sparkplug_out is not None:
            start("sparkplug-out", self.sparkplug_out.run)
        if self.health_server is not None:
            start("health", self.health_server.run)
        if cfg.hub is not None:
            assert self.outbox is not None
            self.uploader = Uploader(cfg.hub, cfg.gateway_id, self.outbox)
            start("hub-upload", self.uploader.run)
        if cfg.hub is not None and cfg.hub.sync_models:
            self.sync = HubSync(cfg.hub, cfg.gateway_id, self.sync_slots, self.hub_report,
                                on_config=self.remote.on_desired if self.remote else None)
            start("hub-sync", self.sync.run)
        if self.notifier.watchdog_interval_s is not None:
            assert self._group is not None
            self._tasks["watchdog"] = self._group.create_task(self._watchdog_loop(), name="watchdog")

    async def _drain(self) -> None:
        """Stop the graph stage by stage: inputs, then models (each drains its channel)."""
        inputs = [self._tasks[n] for n in self._tasks if n.startswith(("source:", "labels"))]
        for task in inputs:
            task.cancel()
        if inputs:
            await asyncio.wait(inputs, timeout=10)
        for unit in self.units:
            unit.channel.close()
        models = {u: self._tasks[f"model:{u.dir_name}"] for u in self.units
                  if f"model:{u.dir_name}" in self._tasks}
        if models:
            await asyncio.wait(models.values(), timeout=30)
        for unit, task in models.items():
            if not task.done():  # a hung runtime: say what is left rather than hang the stop
                log.error("model %s did not drain its channel within 30 s: %d reading(s) left",
                          unit.name, len(unit.channel))
        for task in reversed(list(self._tasks.values())):
            task.cancel()

    def sync_slots(self) -> list[tuple[str, Any, bool]]:
        return [(u.name, u.lifecycle, u.entry.shorthand) for u in self.units if u.lifecycle]

    def start_component(self, name: str, factory: Any, finite: bool = False) -> None:
        """Run a long-lived loop under a supervisor in the agent's task group."""
        assert self._group is not None
        health = self.health[name] = ComponentHealth(name)
        self._tasks.pop(name, None)  # re-inserted last: shutdown stays in reverse start order
        self._tasks[name] = self._group.create_task(
            supervise(name, factory, health, finite=finite), name=name)

    async def stop_component(self, name: str) -> None:
        task = self._tasks.pop(name, None)
        self.health.pop(name, None)
        if task is not None:
            task.cancel()
            await asyncio.wait({task}, timeout=10)

    def worst_health(self) -> str:
        return liveness.worst_health(self)

    def status_line(self) -> str:
        return liveness.status_line(self)

    def stuck_components(self, now: float | None = None) -> list[str]:
        """Loops whose heartbeat is older than they may be: the watchdog must then not ping."""
        return liveness.stuck_components(self, now)

    async def _watchdog_loop(self) -> None:
        await liveness.watchdog_loop(self)

    async def _load_initial_model(self) -> None:
        moved = upgrade_state(self.config, [u.dir_name for u in self.units])
        if moved is not None:
            self.record_audit("agent", "state_upgraded", f"models/{moved}",
                              "single-model state directory moved into the model's folder")
        for unit in self.units:
            await unit.start()
        # what is loaded now (modules, runtimes, models) lives as long as the process: out of
        # the collector's sight, a full collection no longer walks it. Without this a gen-2
        # collection stopped the data path for 100+ ms now and then (bench.pipeline_models)
        gc.freeze()

    def _on_model(self, unit: ModelUnit, model: LoadedModel) -> None:
        """A model switched versions: its OPC UA write-back follows it."""
        self.writebacks.on_model(unit, model)

    @property
    def writeback(self) -> OpcUaWriteback | None:
        """The first model's write-back (the one `outputs.opcua_writeback` configures)."""
        return self.writebacks.by_unit.get(self.units[0].dir_name)

    async def reconfigure(self, new: AgentConfig) -> list[str]:
        from agent.service.reconfigure import apply

        return await apply(self, new)

    def component_connected(self, name: str) -> bool:
        """For the grace period of a config change: is this component up?"""
        if name.startswith("source:"):
            return any(f"source:{s.status.name}" == name and s.status.connected for s in self.sources)
        holder = {"mqtt-out": self.publisher, "sparkplug-out": self.sparkplug_out,
                  **self.label_listeners}.get(name)
        return holder is None or holder.status.connected

    # -- the sinks -------------------------------------------------------------------------------
    def _to_sinks(self, unit: ModelUnit, predictions: PredictionBatch) -> None:
        if self.publisher is not None:
            self.publisher.offer(predictions, unit.entry.outputs.topic)
        self.writebacks.offer(unit, predictions)
        if self.sparkplug_out is not None:
            self.sparkplug_out.offer(predictions)

    def _observe_latency(self, model: str, seconds: float) -> None:
        if self.health_server is not None:
            self.health_server.latency.labels(model=model).observe(seconds)

    def _on_route_label(self, route: LabelRoute, label: Label) -> None:
        route.deliver(label)

    def on_label(self, label: Label) -> None:
        """A label for every model fed by the top-level label source."""
        for unit in self.units:
            if unit.entry.labels is None:
                unit.on_label(label)

    def _publish_events(self, unit: ModelUnit, events: list[IncidentEvent]) -> None:
        """Incident events: what is not held back (shelved, flood guard) goes to the MQTT alarm
        topic; every one goes through the outbox to the hub; alarms, acknowledgements and
        shelving into the audit log."""
        for e in events:
            self.events.append(e)
            for listener in self.event_listeners:
                listener(e)
            doc = e.as_dict()
            self.recorder.event(doc)
            if self.publisher is not None and e.suppressed is None:
                topic = unit.monitoring.alarm_topic.format(
                    gateway_id=self.config.gateway_id, model=e.model, version=e.model_version)
                self.publisher.offer_raw(topic, json.dumps(doc, default=str).encode())
            audit = audit_record(e)
            if audit is not None:
                self.record_audit(audit[0], audit[1], f"{e.model} {e.model_version}", audit[2], audit[3])
            log.log(logging.WARNING if e.notify else logging.INFO,
                    "incident %s %s of %s (%s, %s): %s", e.incident_id, e.action, e.model,
                    e.level.upper(), e.suppressed or ("notified" if e.notify else "recorded"), e.reason)

    def _lifecycle_event(self, doc: dict[str, Any]) -> None:
        self.recorder.lifecycle(doc)
        self.record_audit(str(doc.get("actor") or "agent"), f"model_{doc['event']}",
                          f"{doc.get('model')} {doc.get('version')}", str(doc.get("reason") or ""),
                          {"sha256": doc.get("sha256"),
                           **({"to_version": doc["to_version"]} if "to_version" in doc else {})})

    def record_audit(self, actor: str, action: str, subject: str, why: str,
                     detail: dict[str, Any] | None = None) -> None:
        self.recorder.record_audit(actor, action, subject, why, detail)

    # -- periodic loops ----------------------------------------------------------------------------
    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.outbox.flush_interval_s)
            await self._flush()
            self.health["flusher"].heartbeat = time.monotonic()

    async def _flush(self) -> None:
        for unit in self.units:
            unit.flush()
        await self.recorder.flush()

    async def _status_loop(self) -> None:
        while True:
            for unit in self.units:
                await unit.tick()
                unit.rate()
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
