"""Agent configuration: YAML -> ${ENV} substitution -> pydantic validation.

Validation is pure: no file is opened and no network is touched while a model validates
(files named in the config are checked by ``preflight``, which check-config runs separately).
The models live in one module per area; this package re-exports them, so callers import
``from agent.config import ...``.
"""

from __future__ import annotations

from agent.config.common import BackoffConfig, Secret, SecretFile, Strict, TlsConfig, reveal
from agent.config.loader import (
    DEFAULT_CONFIG_PATH,
    format_location,
    load_config,
    load_config_dict,
    parse_config,
    preflight,
    substitute_env,
)
from agent.config.model import (
    FeaturesConfig,
    ModelConfig,
    OnnxRuntimeConfig,
    RollbackPolicy,
    RuntimeConfig,
    TfliteRuntimeConfig,
)
from agent.config.outputs import (
    LabelsConfig,
    MonitoringConfig,
    MqttLabelsConfig,
    MqttOutputConfig,
    NoLabelsConfig,
    OpcUaLabelsConfig,
    OpcUaWritebackConfig,
    OutputsConfig,
    SparkplugOutputConfig,
)
from agent.config.service import (
    AgentConfig,
    HealthConfig,
    HubConfig,
    OutboxConfig,
    RemoteConfigPolicy,
    TrainingDataConfig,
)
from agent.config.slots import MODEL_NAME_PATTERN, ModelEntry, ModelOutputs
from agent.config.sources import (
    MonitoredQueue,
    MqttBroker,
    MqttSourceConfig,
    MqttTag,
    MqttTopic,
    OpcUaNode,
    OpcUaSecurity,
    OpcUaSourceConfig,
    SourceConfig,
    SparkplugMetric,
    SparkplugSourceConfig,
)

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "MODEL_NAME_PATTERN",
    "AgentConfig",
    "BackoffConfig",
    "FeaturesConfig",
    "HealthConfig",
    "HubConfig",
    "LabelsConfig",
    "ModelConfig",
    "ModelEntry",
    "ModelOutputs",
    "MonitoredQueue",
    "MonitoringConfig",
    "MqttBroker",
    "MqttLabelsConfig",
    "MqttOutputConfig",
    "MqttSourceConfig",
    "MqttTag",
    "MqttTopic",
    "NoLabelsConfig",
    "OnnxRuntimeConfig",
    "OpcUaLabelsConfig",
    "OpcUaNode",
    "OpcUaSecurity",
    "OpcUaSourceConfig",
    "OpcUaWritebackConfig",
    "OutboxConfig",
    "OutputsConfig",
    "RemoteConfigPolicy",
    "RollbackPolicy",
    "RuntimeConfig",
    "Secret",
    "SecretFile",
    "SourceConfig",
    "SparkplugMetric",
    "SparkplugOutputConfig",
    "SparkplugSourceConfig",
    "Strict",
    "TfliteRuntimeConfig",
    "TlsConfig",
    "TrainingDataConfig",
    "format_location",
    "load_config",
    "load_config_dict",
    "parse_config",
    "preflight",
    "reveal",
    "substitute_env",
]
