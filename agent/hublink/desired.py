"""The hub's desired state as the agent reads it: its shape, checked before anything is acted
on (a document of the wrong shape is a refusal, the sync goes on polling), and which part of it
speaks for which model slot (`models` by name; the legacy top level for one-model agents and
old hubs)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError

from agent.errors import AgentError

DESIRED_MAX_BYTES = 4 << 20  # a desired state is a few KB: model, shadow, config overlay
MAX_MODELS_DESIRED = 256  # models with a deployment for one gateway


class DownloadError(AgentError):
    """A bundle download that did not complete; it resumes at the next attempt."""


_SHA256 = r"^[0-9a-f]{64}$"


class _Lenient(BaseModel):
    # the hub may add fields in later versions; the ones the agent uses must have their types
    model_config = ConfigDict(extra="allow")


class _BundleRef(_Lenient):
    sha256: str = Field(pattern=_SHA256)
    url: str = Field(min_length=1, max_length=4096)
    size: StrictInt | None = Field(None, ge=0)
    archive_sha256: str | None = Field(None, pattern=_SHA256)
    name: str | None = Field(None, max_length=256)
    version: str | None = Field(None, max_length=256)


class _ShadowRef(_BundleRef):
    min_labels: StrictInt | None = Field(None, ge=0)
    watch_s: float | None = Field(None, ge=0, allow_inf_nan=False)


class _ModelDesired(_Lenient):
    model: _BundleRef | None = None
    deployment: dict[str, Any] | None = None
    shadow: _ShadowRef | None = None


class _Desired(_ModelDesired):
    models: dict[str, _ModelDesired] | None = Field(None, max_length=MAX_MODELS_DESIRED)
    config: dict[str, Any] | None = None


def check_desired(doc: Any) -> dict[str, Any]:
    """The desired state as the hub sent it, once its shape is known to be right."""
    try:
        _Desired.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "the document"
        raise DownloadError(f"the hub's desired state is malformed at {where}: {err['msg']}") from None
    assert isinstance(doc, dict)
    return doc


def desired_for(doc: dict[str, Any], slot: str, shorthand: bool, slots: int) -> dict[str, Any] | None:
    """What the desired state asks of one model slot (None: leave it as it runs). A hub of the
    current release sends `models` by name; its legacy top level (and an old hub's only
    level) speaks for a one-model agent, or for the slot its model names."""
    models = doc.get("models")
    if isinstance(models, dict) and slot in models:
        part: dict[str, Any] = models[slot]
        return part
    if isinstance(models, dict) and not (slots == 1 and shorthand):
        return None
    if slots == 1:
        return doc
    named = {(doc.get(k) or {}).get("name") for k in ("model", "shadow")} - {None}
    return doc if slot in named else None
