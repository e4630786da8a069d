"""The top-level config model and the service-wide sections (hub, health, outbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from agent.config.common import BackoffConfig, Secret, Strict
from agent.config.limits import InputLimits
from agent.config.model import FeaturesConfig
from agent.config.outputs import (
    LabelsConfig,
    MonitoringConfig,
    MqttLabelsConfig,
    NoLabelsConfig,
    OpcUaLabelsConfig,
    OutputsConfig,
)
from agent.config.overlay import DEFAULT_PINS
from agent.config.slots import MAX_MODELS, ModelEntry, normalise_models
from agent.config.sources import SourceConfig

# the same pattern the hub enforces for `edge-hub gateways add`: no path separators, no "..",
# no "group:" prefix, nothing a log line or a file name could be confused by
GATEWAY_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class HubConfig(Strict):
    url: str = Field(pattern=r"^https?://", description="Hub base URL, https://hub.plant:8443.")
    token: Secret = Field(description="This gateway's hub token, or {file: PATH}.")
    ca_file: Path | None = Field(None, description="CA bundle that signs the hub's certificate.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of each hub request.")
    download_timeout_s: float = Field(900.0, gt=0, le=86400, description=(
        "Longest one bundle download may take (a hub that sends slower than the per-request "
        "timeout notices, but never finishes, cannot hold up the sync); what arrived is kept and "
        "the next attempt resumes it with HTTP Range."))
    upload_interval_s: float = Field(2.0, gt=0, description="Pause when the outbox is empty.")
    upload_batch: int = Field(500, ge=1, le=10_000, description="Outbox records per upload.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig,
                                     description="Retry delays while the hub is unreachable.")
    sync_models: bool = Field(True, description="Take model versions from the hub's desired state.")
    poll_interval_s: float = Field(30.0, gt=0, description="How often to ask for the desired state.")
    poll_jitter: float = Field(0.2, ge=0, le=1, description=(
        "Random fraction added to each poll interval, so a fleet does not poll in lockstep."))
    report_interval_s: float = Field(30.0, gt=0, description="How often to send a status report.")


class HealthConfig(Strict):
    enabled: bool = Field(True, description="Serve /healthz, /readyz and /metrics.")
    listen: str = Field("127.0.0.1", description="Address to listen on (loopback by default).")
    port: int = Field(9108, ge=0, le=65535, description="TCP port (0: any free port).")


class OutboxConfig(Strict):
    path: Path | None = Field(None, description="SQLite file; default STATE_DIR/outbox.db.")
    disk_budget_bytes: int = Field(1 << 30, ge=1 << 16, description="Bytes kept before evicting.")
    synchronous: Literal["NORMAL", "FULL"] = Field(
        "NORMAL", description="FULL survives power loss; NORMAL survives process crashes."
    )
    flush_interval_s: float = Field(0.5, gt=0, description="Batching period of writes.")
    store_readings: bool = Field(True, description="Keep raw tag readings for the hub.")


class TrainingDataConfig(Strict):
    enabled: bool = Field(True, description="Upload labelled samples for retraining at the hub.")
    daily_budget: int = Field(5000, ge=0, description=(
        "Labelled samples uploaded per day; misclassified parts and parts seen during a drift "
        "warning may use all of it, ordinary ones half."))


class RemoteConfigPolicy(Strict):
    enabled: bool = Field(True, description="Apply config overlays the hub holds for this gateway.")
    grace_s: float = Field(60.0, gt=0, description=(
        "Seconds a changed source or output has to connect before the change is reverted."))


class AgentConfig(Strict):
    gateway_id: str = Field(pattern=GATEWAY_ID_PATTERN, description=(
        "This gateway's id: letters, digits, '.', '_' and '-', starting with a letter or digit, "
        "at most 64 characters."))
    state_dir: Path = Field(Path("/var/lib/edge-agent"), description="Writable state directory.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Log JSON lines instead of plain text.")
    reading_queue: int = Field(100_000, ge=100, le=10_000_000,
                               description="Readings buffered before dropping.")
    sources: list[SourceConfig] = Field(min_length=1, description="Protocol sources.")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Sampling.")
    models: list[ModelEntry] = Field(
        default_factory=lambda: [ModelEntry()], min_length=1, max_length=MAX_MODELS, description=(
            "The models this gateway runs, one entry each, at most 32. `model:` is the one-model "
            "shorthand: one entry's settings without `name` (taken from the bundle); giving both "
            "is refused. Neither: one model, hub-managed."))
    outputs: OutputsConfig = Field(default_factory=OutputsConfig, description="Where predictions go.")
    labels: LabelsConfig | None = Field(None, description="Where ground-truth labels come from.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig,
                                         description="Model health monitoring.")
    health: HealthConfig = Field(default_factory=HealthConfig,
                                 description="Local health and Prometheus metrics endpoint.")
    hub: HubConfig | None = Field(None, description="The central hub to upload telemetry to.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Store-and-forward.")
    training_data: TrainingDataConfig = Field(default_factory=TrainingDataConfig,
                                              description="Labelled samples for retraining.")
    config_pins: list[str] = Field(default_factory=lambda: list(DEFAULT_PINS), description=(
        "Dotted paths the hub's config overlay may not change; the local file wins "
        "(e.g. sources, outputs.mqtt.broker). gateway_id and state_dir are always local."))
    remote_config: RemoteConfigPolicy = Field(default_factory=RemoteConfigPolicy,
                                              description="Config overlays from the hub.")
    limits: InputLimits = Field(default_factory=InputLimits, description=(
        "Limits on input from outside (payloads, bundles, readings); see docs/hostile-input.md."))

    @model_validator(mode="before")
    @classmethod
    def _one_list_of_models(cls, data: Any) -> Any:
        return normalise_models(data)

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {', '.join(dupes)}")
        self._check_writebacks()
        return self

    def _check_writebacks(self) -> None:
        """Each write-back writes through an OPC UA source, and no PLC node is written by two
        models (they would overwrite each other's answer every part)."""
        places = [("outputs.opcua_writeback", self.outputs.opcua_writeback)] + [
            (f"models[{i}].outputs.opcua_writeback", m.outputs.opcua_writeback)
            for i, m in enumerate(self.models)]
        if self.outputs.opcua_writeback is not None and self.models[0].outputs.opcua_writeback:
            raise ValueError("outputs.opcua_writeback serves the first model, which has its own "
                             "models[0].outputs.opcua_writeback: keep one of the two")
        writers: dict[str, str] = {}
        for place, wb in places:
            if wb is None:
                continue
            if not any(s.name == wb.source and s.type == "opcua" for s in self.sources):
                raise ValueError(f"{place}.source '{wb.source}' is not an opcua source")
            for node in wb.nodes.values():
                key = f"{wb.source}/{node}"
                if key in writers:
                    raise ValueError(f"{place}: node {node} of source {wb.source} is already "
                                     f"written by {writers[key]}; give each model its own nodes")
                writers[key] = place

    @property
    def model(self) -> ModelEntry:
        """The first model (all of it for a `model:` agent)."""
        return self.models[0]

    def features_of(self, entry: ModelEntry) -> FeaturesConfig:
        return entry.features or self.features

    def monitoring_of(self, entry: ModelEntry) -> MonitoringConfig:
        return entry.monitoring or self.monitoring

    def labels_of(self, entry: ModelEntry) -> MqttLabelsConfig | OpcUaLabelsConfig | None:
        """The model's own labels, else the top-level ones; `type: none` opts out of both."""
        labels = entry.labels if entry.labels is not None else self.labels
        return None if isinstance(labels, NoLabelsConfig) else labels

    def prediction_topic(self, entry: ModelEntry) -> str | None:
        mqtt = self.outputs.mqtt
        return entry.outputs.topic or (mqtt.topic if mqtt else None)

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.state_dir / "outbox.db"

    def tag_names(self) -> list[str]:
        return [tag for src in self.sources for tag in src.max_ages()]
