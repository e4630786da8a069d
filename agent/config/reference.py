"""The configuration reference (docs/configuration.md), generated from the pydantic models so
that it cannot drift from what the agent accepts: `python -m agent.config.reference > FILE`.
A test regenerates it and fails when the committed file is stale."""

from __future__ import annotations

import enum
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

HEADER = """\
# Configuration reference

Generated from the agent's config models by `python -m agent.config.reference`; do not edit by
hand (a test fails when this file is stale). The agent reads one YAML file (default
`/etc/edge-agent/agent.yaml`); `${NAME}` is replaced by the environment variable, secrets come
from files or the environment (`*_file` keys, systemd `LoadCredential=`), and unknown keys are
refused. `edge-agent check-config FILE` validates a file; `edge-agent config-schema` prints the
JSON Schema. Examples: `firmware-configs/`. Guide: docs/operator-guide.md.
"""


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation refers to (through unions, lists, Annotated, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        for model in _models_in(arg):
            if model not in found:
                found.append(model)
    return found


def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin is typing.Literal:
        return " \\| ".join(f"`{a!r}`" if not isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join(_type_name(a) for a in args)
    if origin in (list, tuple, set, frozenset):
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_type_name(args[0])} → {_type_name(args[1])}" if args else "map"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{_section_name(annotation)}](#{_anchor(annotation)})"
        if issubclass(annotation, enum.Enum):
            return " \\| ".join(f"`{m.value}`" for m in annotation)
        if issubclass(annotation, Path):
            return "path"
        return {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation).replace("typing.", "")


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        try:
            value = field.default_factory()  # type: ignore[call-arg]
        except TypeError:
            return "(computed)"
        if isinstance(value, BaseModel):
            return "(section defaults)"
        if isinstance(value, list) and value and all(isinstance(v, BaseModel) for v in value):
            return f"{len(value)} entry with its defaults"
    elif field.default is PydanticUndefined:
        return "**required**"
    else:
        value = field.default
    if value is None:
        return "none"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, Path):
        value = str(value)
    return f"`{value!r}`" if not isinstance(value, str) else f"`{value}`"


def _section_name(model: type[BaseModel]) -> str:
    return model.__name__


def _anchor(model: type[BaseModel]) -> str:
    return model.__name__.lower()


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render(root: type[BaseModel]) -> str:
    out = [HEADER]
    seen: list[type[BaseModel]] = []
    queue = [root]
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.append(model)
        doc = _cell((model.__doc__ or "").strip().split("\n\n")[0])
        out.append(f"\n## {_section_name(model)}\n")
        if doc and not doc.startswith("Usage docs:"):
            out.append(f"{doc}\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, field in model.model_fields.items():
            key = field.alias or name
            out.append(f"| `{key}` | {_type_name(field.annotation)} | {_default(field)} | "
                       f"{_cell(field.description or '')} |")
            queue.extend(m for m in _models_in(field.annotation) if m not in seen)
    return "\n".join(out) + "\n"


def main() -> int:
    from agent.config import AgentConfig

    sys.stdout.write(render(AgentConfig))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
