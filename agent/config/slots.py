"""Config of the models a gateway runs: the `models:` list, one entry per model, each with the
settings of `model:` plus optional per-model features, monitoring, prediction topic and label
source (each defaults to the top-level section of the same name).

`model:` is the one-model shorthand; ``normalise_models`` turns it into a one-entry list, and
it is the only place that does (the config's before-validator calls it)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from agent.config.common import Strict
from agent.config.model import FeaturesConfig, ModelConfig
from agent.config.outputs import LabelsConfig, MonitoringConfig, OpcUaWritebackConfig

MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_MODELS = 32  # the hub reads at most 32 entries of a status report
SHORTHAND_NAME = "default"  # a `model:` agent's slot until a bundle says its name


class ModelOutputs(Strict):
    topic: str | None = Field(None, min_length=1, description=(
        "MQTT topic template of this model's predictions ({gateway_id}, {model}, {version}); "
        "default: outputs.mqtt.topic."))
    opcua_writeback: OpcUaWritebackConfig | None = Field(None, description=(
        "Write this model's outputs to PLC nodes; default: none, except for the first model, "
        "which the top-level outputs.opcua_writeback serves."))


class ModelEntry(ModelConfig):
    name: str | None = Field(None, pattern=MODEL_NAME_PATTERN, description=(
        "The model's name: the `name` of its bundles' manifest (a bundle of another name is "
        "refused for this entry). Required in `models:`; the `model:` shorthand takes it from "
        "the bundle."))
    features: FeaturesConfig | None = Field(None, description="Sampling of this model; default: "
                                            "the top-level `features:`.")
    monitoring: MonitoringConfig | None = Field(None, description="Monitoring of this model; "
                                                "default: the top-level `monitoring:`.")
    outputs: ModelOutputs = Field(default_factory=ModelOutputs,
                                  description="Where this model's predictions go.")
    labels: LabelsConfig | None = Field(None, description="Ground-truth labels of this model; "
                                        "default: the top-level `labels:`.")

    @property
    def shorthand(self) -> bool:
        """Made from `model:`: the name comes from the bundle, not the config."""
        return self.name is None


def normalise_models(data: Any) -> Any:
    """`model: {...}` -> `models: [{...}]`; both -> refused naming both keys; neither -> one
    hub-managed shorthand entry (as `model:` with its defaults was)."""
    if not isinstance(data, dict):
        return data
    if "model" in data and "models" in data:
        raise ValueError("both 'model' and 'models' are given: use 'models:' (a list, one entry "
                         "per model, each with a name) or the one-model shorthand 'model:', not both")
    if "models" in data:
        entries = data["models"]
        if isinstance(entries, list):
            for i, entry in enumerate(entries):
                # `name: null` in a one-entry list is the shorthand as a config dump writes it
                dumped_shorthand = (isinstance(entry, dict) and len(entries) == 1
                                    and "name" in entry and entry["name"] is None)
                if isinstance(entry, dict) and not entry.get("name") and not dumped_shorthand:
                    raise ValueError(f"models[{i}].name: required (the name of the model's "
                                     "bundles, as in their manifest)")
            names = [e.get("name") for e in entries if isinstance(e, dict)]
            dupes = sorted({str(n) for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"models: names must be unique, repeated: {', '.join(dupes)}")
        return data
    data = dict(data)
    shorthand = data.pop("model", None)
    if isinstance(shorthand, dict) and "name" in shorthand:
        raise ValueError("model.name: the 'model:' shorthand takes its name from the bundle; "
                         "to name a model, use 'models: [{name: ..., ...}]'")
    data["models"] = [shorthand if shorthand is not None else {}]
    return data
