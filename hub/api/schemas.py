"""Request and response bodies of the hub's API: a bound on every field, so a bad request is a
422 naming the field, never a 500. Gateways' bodies ignore fields they do not know (a newer
agent may report more) but type every field the hub reads; admin bodies refuse unknown fields."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StringConstraints

from hub.ids import GATEWAY_ID_MAX, GATEWAY_ID_PATTERN, TARGET_MAX, TARGET_PATTERN
from hub.limits import INT64_MAX

# numbers are strict: true, "5" or 1.5 where an integer belongs are refused, not coerced
Seq = Annotated[int, Field(ge=1, le=INT64_MAX, strict=True)]
Count = Annotated[int, Field(ge=0, le=INT64_MAX, strict=True)]
Epoch = Annotated[float, Field(ge=0, le=4_102_444_800.0, allow_inf_nan=False, strict=True,
                               description="Seconds since 1970 (up to 2100-01-01).")]
Finite = Annotated[float, Field(allow_inf_nan=False, strict=True)]
NonNegative = Annotated[float, Field(ge=0, allow_inf_nan=False, strict=True)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Version = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Text = Annotated[str, StringConstraints(max_length=2000)]
Sha = Annotated[str, StringConstraints(max_length=64)]


class _Gateway(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False)


class _Admin(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# -- gateway bodies ----------------------------------------------------------------------------
class TelemetryRecord(_Gateway):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    seq: Seq
    kind: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")] = Field(
        description="Record kind (readings, predictions, labels, events, lifecycle, audit, ...).")
    items: Count
    created: Epoch
    payload_hex: Annotated[str, StringConstraints(max_length=1 << 26, pattern=r"^(?:[0-9a-fA-F]{2})*$")]


class TelemetryBatch(_Gateway):
    """A gzip-compressed batch of outbox records (Content-Encoding: gzip)."""
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    gateway_id: Annotated[str, StringConstraints(pattern=GATEWAY_ID_PATTERN, max_length=GATEWAY_ID_MAX)]
    first_seq: Seq
    last_seq: Seq
    records: list[TelemetryRecord] = Field(max_length=20_000)


class VersionRef(_Gateway):
    name: Name | None = None
    version: Version | None = None
    sha256: Sha | None = None
    since: Epoch | None = None
    reason: Text | None = None


class Comparison(_Gateway):
    kind: Annotated[str, StringConstraints(max_length=32)] = "classifier"
    labelled: NonNegative = 0
    active_errors: NonNegative = 0
    candidate_errors: NonNegative = 0


class ShadowState(VersionRef):
    comparison: Comparison | None = None
    decision_ready: StrictBool | None = None


class WatchState(VersionRef):
    until: Epoch | None = None
    inference_errors: Count | None = None


class Rejected(VersionRef):
    at: Epoch | None = None


class MonitorFigures(_Gateway):
    psi: dict[Annotated[str, StringConstraints(max_length=256)], Finite | None] | None = None
    prediction_psi: Finite | None = None
    rolling_accuracy: Finite | None = None


class ReportMetrics(_Gateway):
    monitor: MonitorFigures | None = None


class _ModelState(_Gateway):
    """The per-model fields of a report."""
    active: VersionRef | None = None
    shadow: ShadowState | None = None
    watch: WatchState | None = None
    rejected: list[Rejected] = Field(default_factory=list, max_length=100)
    alarms: dict[str, Any] | list[Any] | None = None
    health: Annotated[str, StringConstraints(max_length=16)] | None = None
    last_error: Text | None = None
    metrics: ReportMetrics | None = None


MODEL_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_MODELS = 32


class ModelReport(_ModelState):
    """One model of a several-model gateway: its name (the bundles' manifest name) and state."""
    name: Annotated[str, StringConstraints(pattern=MODEL_NAME_PATTERN, max_length=64)] = Field(
        description="The model's name (its bundles' manifest name), unique within a report.")


def _unique_names(models: list[ModelReport] | None) -> list[ModelReport] | None:
    names = [m.name for m in models or []]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"models: {', '.join(twice)} reported twice; one entry per model name")
    return models


class StatusReport(_ModelState):
    """A gateway's state: versions, comparison figures, alarms, backlog. The top level describes
    its first (or only) model; ``models`` (from agents running several) has one entry per model.
    Fields the hub does not read are kept as sent (within the JSON limits) so that newer agents
    can report more."""
    agent_version: Annotated[str, StringConstraints(max_length=64)] | None = None
    updated: Epoch | None = None
    outbox_depth: Count | None = None
    config: dict[str, Any] | None = None
    models: Annotated[list[ModelReport] | None, AfterValidator(_unique_names)] = Field(
        None, max_length=MAX_MODELS,
        description=f"One entry per model the gateway runs (at most {MAX_MODELS}); absent from a "
                    "one-model agent, whose top level is its model's entry.")


# -- admin bodies ------------------------------------------------------------------------------
class DeployRequest(_Admin):
    model: Name
    version: Version
    to: Annotated[str, StringConstraints(pattern=TARGET_PATTERN, max_length=TARGET_MAX)] = Field(
        description="A gateway id, a group name, or group:NAME.")
    strategy: Literal["immediate", "canary", "shadow"] = "immediate"
    canary_size: int = Field(1, ge=1, le=10_000, strict=True, description="Gateways that get a canary first.")
    watch_s: float = Field(600.0, ge=0, le=30 * 86400, allow_inf_nan=False, strict=True,
                           description="Seconds a canary must run clean / a shadow may wait for labels.")
    min_labels: int = Field(50, ge=0, le=1_000_000_000, strict=True,
                            description="Labelled outcomes a shadow comparison needs.")
    margin: float = Field(0.0, ge=0, le=10, allow_inf_nan=False, strict=True,
                          description="How much worse a shadow may be and still win.")


class RollbackRequest(_Admin):
    to_version: Version
    target: Annotated[str, StringConstraints(pattern=TARGET_PATTERN, max_length=TARGET_MAX)] | None = None


class OverlayRequest(_Admin):
    overlay: dict[str, Any] = Field(description="Agent config sections; {} clears the overlay.")
    author: Annotated[str, StringConstraints(max_length=128)] | None = Field(
        None, description="On whose behalf (the audit trail names the token's holder as well).")
    comment: Annotated[str, StringConstraints(max_length=1000)] | None = None


# -- responses ---------------------------------------------------------------------------------
class ErrorBody(BaseModel):
    detail: str | list[dict[str, Any]] = Field(
        description="Why; for a bad field, a list of {loc, msg, type} naming it.")


class TelemetryResult(BaseModel):
    received: int
    stored: int
    duplicates: int


class StoredResult(BaseModel):
    stored: str


class IdResult(BaseModel):
    id: int


class TargetsResult(BaseModel):
    targets: list[str]


class Published(BaseModel):
    name: str
    version: str
    sha256: str


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers of a route."""
    why = {400: "Malformed body", 401: "Missing or unknown token", 403: "Not allowed for this token",
           404: "Not found", 413: "Body over a limit", 415: "Unsupported Content-Encoding",
           422: "A field out of bounds or a request that cannot be honoured"}
    return {c: {"model": ErrorBody, "description": why[c]} for c in codes}
