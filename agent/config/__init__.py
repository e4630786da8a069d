"""Agent configuration: YAML -> ${ENV} substitution -> pydantic validation.

Validation is pure: no file is opened and no network is touched while a model validates
(files named in the config are checked by ``preflight``, which check-config runs separately).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

from agent.config.overlay import DEFAULT_PINS
from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/agent.yaml")

_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretFile(Strict):
    file: Path = Field(description="Path of a file whose whole content (stripped) is the secret.")


Secret = SecretStr | SecretFile


def reveal(secret: Secret | None) -> str | None:
    """Return the secret's text. Reading a file happens here, at connect time, never in logs."""
    if secret is None:
        return None
    if isinstance(secret, SecretFile):
        return secret.file.read_text(encoding="utf-8").strip()
    return secret.get_secret_value()


class TlsConfig(Strict):
    ca_file: Path | None = Field(None, description="CA bundle that signs the server certificate.")
    cert_file: Path | None = Field(None, description="Client certificate for mutual TLS.")
    key_file: Path | None = Field(None, description="Private key of the client certificate.")
    insecure: bool = Field(False, description="Skip server hostname verification (test only).")


class BackoffConfig(Strict):
    initial_s: float = Field(1.0, gt=0, description="First retry delay in seconds.")
    max_s: float = Field(60.0, gt=0, description="Upper bound of the retry delay in seconds.")


class OpcUaSecurity(Strict):
    mode: Literal["None", "Sign", "SignAndEncrypt"] = Field(
        "None", description="OPC UA message security mode."
    )
    policy: Literal["Basic256Sha256"] = Field(
        "Basic256Sha256", description="Security policy used when mode is not None."
    )
    certificate: Path | None = Field(None, description="Client application certificate (DER/PEM).")
    private_key: Path | None = Field(None, description="Private key of the client certificate.")
    server_certificate: Path | None = Field(None, description="Pinned server certificate.")

    @model_validator(mode="after")
    def _keys_when_secure(self) -> OpcUaSecurity:
        if self.mode != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError(f"mode {self.mode} needs both 'certificate' and 'private_key' files")
        return self


_NODE_ID = r"^(ns=\d+;)?(i=\d+|s=.+|g=[0-9a-fA-F-]{36}|b=.+)$"


class OpcUaNode(Strict):
    tag: str = Field(min_length=1, description="Tag name used by features and the model bundle.")
    node_id: str = Field(
        pattern=_NODE_ID,
        description="OPC UA node id, numeric or string form: 'ns=2;i=1001' or 'ns=3;s=\"DB1\".\"T\"'.",
    )
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")


class OpcUaSourceConfig(Strict):
    type: Literal["opcua"] = Field(description="Source plug-in: OPC UA client (asyncua).")
    name: str = Field(min_length=1, description="Unique source name.")
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="Server URL, opc.tcp://host:port/path.")
    security: OpcUaSecurity = Field(default_factory=OpcUaSecurity, description="Message security.")
    username: str | None = Field(None, description="User name for user/password identity.")
    password: Secret | None = Field(None, description="Password, or {file: PATH}.")
    publishing_interval_ms: float = Field(500, gt=0, description="Subscription publishing interval.")
    sampling_interval_ms: float = Field(100, ge=0, description="Monitored-item sampling interval.")
    max_items_per_subscription: int = Field(
        1000, ge=1, description="Split monitored items across subscriptions above this many."
    )
    timeout_s: float = Field(5.0, gt=0, description="Timeout of each request to the server.")
    watchdog_s: float = Field(5.0, gt=0, description="Connection check period.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry delays.")
    nodes: list[OpcUaNode] = Field(min_length=1, description="Nodes to subscribe to.")


class MqttBroker(Strict):
    host: str = Field(min_length=1, description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker port (8883 is usual with TLS).")
    username: str | None = Field(None, description="User name.")
    password: Secret | None = Field(None, description="Password, or {file: PATH}.")
    client_id: str | None = Field(None, description="Client id; generated when empty.")
    keepalive_s: int = Field(30, ge=5, description="MQTT keep-alive in seconds.")
    tls: TlsConfig | None = Field(None, description="Enable TLS with these settings.")
    reconnect: BackoffConfig = Field(default_factory=BackoffConfig, description="Retry delays.")


class MqttTag(Strict):
    tag: str = Field(
        min_length=1,
        description="Tag name; '{1}', '{2}'... are replaced by the levels a wildcard matched.",
    )
    field: str | None = Field(
        None, description="Dotted path into a JSON payload ('data.temp'); empty for a plain number."
    )
    timestamp_field: str | None = Field(
        None, description="Dotted path of the source timestamp (epoch s/ms or ISO 8601)."
    )
    max_age_s: float | None = Field(None, gt=0, description="Staleness limit for this tag.")


class MqttTopic(Strict):
    topic: str = Field(min_length=1, description="Topic filter; '+' and '#' wildcards allowed.")
    tags: list[MqttTag] = Field(min_length=1, description="Tags read from each message.")

    @model_validator(mode="after")
    def _valid_filter(self) -> MqttTopic:
        levels = self.topic.split("/")
        for i, level in enumerate(levels):
            if "#" in level and (level != "#" or i != len(levels) - 1):
                raise ValueError("'#' must be a whole level and the last one")
            if "+" in level and level != "+":
                raise ValueError("'+' must be a whole level")
        return self


class MqttSourceConfig(Strict):
    type: Literal["mqtt"] = Field(description="Source plug-in: MQTT subscriber (aiomqtt).")
    name: str = Field(min_length=1, description="Unique source name.")
    broker: MqttBroker = Field(description="Broker connection.")
    qos: Literal[0, 1, 2] = Field(1, description="Subscription QoS.")
    topics: list[MqttTopic] = Field(min_length=1, description="Topic filters and their tags.")


SourceConfig = Annotated[OpcUaSourceConfig | MqttSourceConfig, Field(discriminator="type")]


class OnnxRuntimeConfig(Strict):
    type: Literal["onnx"] = Field("onnx", description="Runtime plug-in: onnxruntime.")
    threads: int = Field(1, ge=1, le=64, description="Intra-op threads.")


class TfliteRuntimeConfig(Strict):
    type: Literal["tflite"] = Field(description="Runtime plug-in: LiteRT (ai-edge-litert).")
    threads: int = Field(1, ge=1, le=64, description="Interpreter threads.")


RuntimeConfig = Annotated[OnnxRuntimeConfig | TfliteRuntimeConfig, Field(discriminator="type")]


class RollbackPolicy(Strict):
    watch_s: float = Field(600.0, ge=0, description=(
        "Seconds after an activation during which the previous version stays loaded, runs on the "
        "same inputs, and the new one is rolled back at once if it does worse."))
    accuracy_margin: float = Field(0.05, ge=0, description=(
        "Roll back when the new version's error rate on labelled outcomes exceeds the previous "
        "version's by more than this (for regression: MAE by more than this fraction)."))
    min_labels: int = Field(30, ge=1, description="Labelled outcomes needed before accuracy is judged.")
    significance: float = Field(0.05, gt=0, le=1, description=(
        "A classifier is rolled back for accuracy only if a sign test on the parts where just one "
        "version was wrong says the difference is real at this level (1 turns the test off)."))
    latency_factor: float = Field(2.0, gt=1, description=(
        "Roll back when the new version's p99 inference time exceeds the previous one's by this factor."))
    latency_floor_ms: float = Field(5.0, ge=0, description=(
        "A p99 below this never triggers a rollback: at tens of microseconds the factor is noise."))
    min_latency_batches: int = Field(50, ge=5, description="Inference batches needed to judge p99 latency.")
    max_inference_errors: int = Field(3, ge=1, description="Inference errors that trigger a rollback.")


class ModelConfig(Strict):
    bundle: Path | None = Field(None, description="Bundle directory or .tar; none waits for the hub.")
    runtime: RuntimeConfig = Field(default_factory=OnnxRuntimeConfig, description="Model runtime.")
    trusted_keys: list[Path] = Field(
        default_factory=list, description="Ed25519 public keys (PEM) trusted to sign bundles."
    )
    allow_unsigned: bool = Field(False, description="Accept bundles without a valid signature.")
    batch_max: int = Field(64, ge=1, le=4096, description="Largest inference batch.")
    keep_versions: int = Field(3, ge=2, le=50, description="Versions kept on disk for instant rollback.")
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy,
                                     description="When a newly activated version is rolled back.")


class FeaturesConfig(Strict):
    mode: Literal["periodic", "trigger"] = Field(
        "periodic", description="Sample on a fixed period, or when the trigger tag changes."
    )
    period_s: float = Field(1.0, gt=0, description="Sampling period in periodic mode.")
    trigger_tag: str | None = Field(None, description="Tag whose change triggers a sample.")
    sample_id_tag: str | None = Field(
        None, description="Tag whose value is the sample id (part serial); defaults to trigger_tag."
    )
    max_age_s: float = Field(5.0, gt=0, description="Default staleness limit of a tag.")

    @model_validator(mode="after")
    def _trigger_needs_tag(self) -> FeaturesConfig:
        if self.mode == "trigger" and not self.trigger_tag:
            raise ValueError("mode 'trigger' needs 'trigger_tag'")
        return self


class MqttOutputConfig(Strict):
    broker: MqttBroker = Field(description="Broker that receives predictions.")
    topic: str = Field(
        "edge/{gateway_id}/{model}/predictions",
        description="Topic template: {gateway_id}, {model}, {version}.",
    )
    qos: Literal[0, 1, 2] = Field(1, description="Publish QoS.")
    queue_size: int = Field(10000, ge=1, description="Messages kept while the broker is down.")


class OpcUaWritebackConfig(Strict):
    source: str = Field(description="Name of the OPC UA source whose session writes.")
    nodes: dict[str, str] = Field(description="Output name ('label', 'score') -> node id.")


class OutputsConfig(Strict):
    mqtt: MqttOutputConfig | None = Field(None, description="Publish predictions over MQTT.")
    opcua_writeback: OpcUaWritebackConfig | None = Field(None, description="Write to the PLC.")


class MqttLabelsConfig(Strict):
    type: Literal["mqtt"] = Field(description="Labels arrive as MQTT messages (a QC station).")
    broker: MqttBroker = Field(description="Broker of the QC station.")
    topic: str = Field(min_length=1, description="Topic filter of label messages.")
    sample_id_field: str = Field("serial", description="JSON path of the sample id.")
    label_field: str = Field("result", description="JSON path of the label value.")


class OpcUaLabelsConfig(Strict):
    type: Literal["opcua"] = Field(description="Labels arrive as an OPC UA tag (a QC verdict).")
    tag: str = Field(min_length=1, description="Tag (of an OPC UA source) holding the label.")
    sample_id_tag: str | None = Field(
        None, description="Tag holding the part serial the verdict is for. The QC station writes "
                          "the verdict, then the serial: a new serial is a new label (two equal "
                          "verdicts in a row would send no change). Empty: each change of `tag` "
                          "is a label, matched by time (monitoring.label_match: time_offset).")
    values: dict[str, str] = Field(
        default_factory=dict, description="Tag value -> class, e.g. {'0': 'NOK', '1': 'OK'}.")


LabelsConfig = Annotated[MqttLabelsConfig | OpcUaLabelsConfig, Field(discriminator="type")]


class MonitoringConfig(Strict):
    enabled: bool = Field(True, description="Run the drift and performance detectors.")
    snapshot_interval_s: float = Field(60.0, gt=0, description="How often detector state is saved.")
    label_match: Literal["sample_id", "time_offset"] = Field(
        "sample_id", description="Join labels by sample id (part serial) or by time offset.")
    label_time_offset_s: float = Field(0.0, ge=0, description="Label arrives this long after its part.")
    label_tolerance_s: float = Field(1.0, gt=0, description="Time-offset matching tolerance.")
    label_ttl_s: float = Field(24 * 3600.0, gt=0, description="How long a prediction waits for its label.")
    max_pending_labels: int = Field(200_000, ge=100, description="Bound of the pending-label table.")
    alarm_topic: str = Field("edge/{gateway_id}/{model}/alarms",
                             description="MQTT topic of alarm events (on outputs.mqtt's broker).")


class HubConfig(Strict):
    url: str = Field(pattern=r"^https?://", description="Hub base URL, https://hub.plant:8443.")
    token: Secret = Field(description="This gateway's hub token, or {file: PATH}.")
    ca_file: Path | None = Field(None, description="CA bundle that signs the hub's certificate.")
    timeout_s: float = Field(10.0, gt=0, description="Timeout of each hub request.")
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
    gateway_id: str = Field(pattern=r"^[A-Za-z0-9_.-]+$", description="This gateway's id.")
    state_dir: Path = Field(Path("/var/lib/edge-agent"), description="Writable state directory.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Log level.")
    log_json: bool = Field(False, description="Log JSON lines instead of plain text.")
    reading_queue: int = Field(100_000, ge=100, description="Readings buffered before dropping.")
    sources: list[SourceConfig] = Field(min_length=1, description="Protocol sources.")
    features: FeaturesConfig = Field(default_factory=FeaturesConfig, description="Sampling.")
    model: ModelConfig = Field(default_factory=ModelConfig, description="Model and runtime.")
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

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {', '.join(dupes)}")
        wb = self.outputs.opcua_writeback
        if wb and not any(s.name == wb.source and s.type == "opcua" for s in self.sources):
            raise ValueError(f"outputs.opcua_writeback.source '{wb.source}' is not an opcua source")
        return self

    @property
    def outbox_path(self) -> Path:
        return self.outbox.path or self.state_dir / "outbox.db"

    def tag_names(self) -> list[str]:
        tags: list[str] = []
        for src in self.sources:
            if isinstance(src, OpcUaSourceConfig):
                tags += [n.tag for n in src.nodes]
            else:
                tags += [t.tag for topic in src.topics for t in topic.tags]
        return tags


def substitute_env(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ${VAR} and ${VAR:-default}; an unset variable without default is an error."""
    env = dict(os.environ) if env is None else env
    missing: list[str] = []

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _ENV_PATTERN.sub(repl, text)
    if missing:
        raise ConfigError([f"${{{n}}}: environment variable is not set (set it or give a default "
                           f"as ${{{n}:-value}})" for n in sorted(set(missing))])
    return result


def format_location(loc: tuple[Any, ...]) -> str:
    place = ""
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        elif part in ("opcua", "mqtt", "onnx", "tflite", "SecretStr", "SecretFile", "str"):
            continue  # discriminator / union branch names say nothing to the user
        elif isinstance(part, str) and ("[" in part or "function-after" in part):
            continue
        else:
            place += f".{part}" if place else str(part)
    return place or "(top level)"


def parse_config(data: Any) -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping of settings, got "
                           f"{type(data).__name__}"])
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            place = format_location(tuple(err["loc"]))
            problems.append(f"{place}: {_friendly(err)}")
        raise ConfigError(list(dict.fromkeys(problems))) from None


def _friendly(err: Any) -> str:
    """Say what to do, not only what pydantic checked."""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "extra_forbidden":
        return "unknown setting (check the spelling; 'edge-agent config-schema' lists them all)"
    if kind == "union_tag_invalid":
        return f"unknown type '{ctx.get('tag')}'; expected one of {ctx.get('expected_tags')}"
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "node_id":
        return (f"'{err['input']}' is not an OPC UA node id; use 'ns=2;i=1001' or "
                "'ns=3;s=Machine.Tag'")
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "endpoint":
        return f"'{err['input']}' is not an OPC UA endpoint; use opc.tcp://host:4840"
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "gateway_id":
        return "use only letters, digits, '.', '_' and '-'"
    if kind == "missing":
        return "required setting is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def load_config(path: Path, env: dict[str, str] | None = None) -> AgentConfig:
    return parse_config(load_config_dict(path, env))


def load_config_dict(path: Path, env: dict[str, str] | None = None) -> Any:
    """The file's settings after ${ENV} substitution, before validation (the base that config
    overlays from the hub are merged over)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror})"]) from None
    text = substitute_env(text, env)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise ConfigError([f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})"]) from None
    return data


def preflight(cfg: AgentConfig) -> list[str]:
    """File checks that validation leaves out: named files must exist and be readable."""
    problems: list[str] = []

    def need(path: Path | None, place: str) -> None:
        if path is not None and not path.exists():
            problems.append(f"{place}: file not found: {path}")

    for i, src in enumerate(cfg.sources):
        if isinstance(src, OpcUaSourceConfig):
            need(src.security.certificate, f"sources[{i}].security.certificate")
            need(src.security.private_key, f"sources[{i}].security.private_key")
            need(src.security.server_certificate, f"sources[{i}].security.server_certificate")
            if isinstance(src.password, SecretFile):
                need(src.password.file, f"sources[{i}].password.file")
        else:
            _check_broker(src.broker, f"sources[{i}].broker", need)
    if cfg.outputs.mqtt:
        _check_broker(cfg.outputs.mqtt.broker, "outputs.mqtt.broker", need)
    if isinstance(cfg.labels, MqttLabelsConfig):
        _check_broker(cfg.labels.broker, "labels.broker", need)
    if cfg.hub is not None:
        need(cfg.hub.ca_file, "hub.ca_file")
        if isinstance(cfg.hub.token, SecretFile):
            need(cfg.hub.token.file, "hub.token.file")
    for i, key in enumerate(cfg.model.trusted_keys):
        need(key, f"model.trusted_keys[{i}]")
    return problems


def _check_broker(broker: MqttBroker, place: str, need: Any) -> None:
    if isinstance(broker.password, SecretFile):
        need(broker.password.file, f"{place}.password.file")
    if broker.tls:
        need(broker.tls.ca_file, f"{place}.tls.ca_file")
        need(broker.tls.cert_file, f"{place}.tls.cert_file")
        need(broker.tls.key_file, f"{place}.tls.key_file")
