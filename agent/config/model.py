"""Config models of the model, its runtime, its rollback policy and the feature stage."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, model_validator

from agent.config.common import Strict


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
    cost_margin: float = Field(0.05, ge=0, description=(
        "Classifiers: roll back when the new version's expected cost per part on labelled "
        "outcomes (cost matrix of its bundle: cost_missed_nok, cost_false_nok) exceeds the "
        "previous version's by more than this and the paired test agrees. Accuracy alone never "
        "decides."))
    accuracy_margin: float = Field(0.05, ge=0, description=(
        "Regressors: roll back when the new version's MAE on labelled outcomes exceeds the "
        "previous version's by more than this fraction."))
    min_labels: int = Field(30, ge=1, description="Labelled outcomes needed before accuracy is judged.")
    significance: float = Field(0.05, gt=0, le=1, description=(
        "A classifier is rolled back for cost only if a paired bootstrap of the per-part cost "
        "difference says the rise is real at this level (1 turns the test off)."))
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
