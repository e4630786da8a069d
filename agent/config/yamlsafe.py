"""Reading a config file safely: its bytes (size, encoding) and its YAML (duplicate keys,
nesting depth, alias expansion), each refusal one line that names the place and the fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from agent.errors import ConfigError

MAX_CONFIG_BYTES = 16 << 20  # the largest profile is 2 kB: 16 MiB is a wrong file or an attack
YAML_MAX_DEPTH = 64
YAML_MAX_NODES = 200_000  # after alias expansion: a "billion laughs" file stops here

_BOMS = ((b"\x00\x00\xfe\xff", "UTF-32"), (b"\xff\xfe\x00\x00", "UTF-32"),
         (b"\xfe\xff", "UTF-16"), (b"\xff\xfe", "UTF-16"))


def read_config_text(path: Path) -> str:
    """The file as UTF-8 text (a UTF-8 byte order mark is dropped); anything else is refused."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read ({exc.strerror or exc})"]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError([f"{path}: larger than {MAX_CONFIG_BYTES >> 20} MiB; a config is a few "
                           "kB (is this the right file?)"])
    for bom, name in _BOMS:
        if raw.startswith(bom):
            raise ConfigError([f"{path}: the file is {name} (byte order mark {bom.hex(' ')}); "
                               "save it as UTF-8"])
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    nul = raw.find(b"\x00")
    if nul >= 0:
        line, col = _position(raw, nul)
        raise ConfigError([f"{path}:{line}:{col}: binary data (a NUL byte), not YAML text; "
                           "is this the right file? (UTF-16 files must be saved as UTF-8)"])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _position(raw, exc.start)
        raise ConfigError([f"{path}:{line}:{col}: byte 0x{raw[exc.start]:02x} is not UTF-8; save "
                           "the file as UTF-8 (Latin-1 and Windows-1252 are not accepted)"]) from None


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    line = raw.count(b"\n", 0, offset) + 1
    return line, offset - (raw.rfind(b"\n", 0, offset) + 1) + 1


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and nesting deeper than YAML_MAX_DEPTH (PyYAML's
    composer recurses per level: 5,000 levels end in RecursionError)."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > YAML_MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {YAML_MAX_DEPTH} levels; a config needs a "
                    "handful", self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # '<<: *defaults' is meant to be overridden
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue  # an unhashable key: construction reports it
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {str(key)[:60]!r} (first at line "
                        f"{first.line + 1}); remove one of them", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


def safe_yaml(text: str, where: str) -> Any:
    """Parse config YAML; ConfigError with file:line:column for anything unsafe or invalid."""
    try:
        data = yaml.load(text, Loader=_ConfigLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{where}:{mark.line + 1}:{mark.column + 1}" if mark else where
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError([f"{place}: not valid YAML ({problem})"]) from None
    except RecursionError:  # the depth guard makes this unreachable; never a traceback anyway
        raise ConfigError([f"{where}: nested too deeply"]) from None
    nodes = _expanded_size(data, {})
    if nodes > YAML_MAX_NODES:
        raise ConfigError([f"{where}: {nodes:,} values once aliases are expanded, more than "
                           f"{YAML_MAX_NODES:,}; a config is a few hundred (an alias bomb?)"])
    return data


def _expanded_size(obj: Any, memo: dict[int, int]) -> int:
    """Values in the document with every alias expanded, counted without expanding it (shared
    objects are counted once per use from a memo). Depth is bounded by the loader."""
    if not isinstance(obj, dict | list):
        return 1
    known = memo.get(id(obj))
    if known is not None:
        return known
    children = obj.values() if isinstance(obj, dict) else obj
    size = 1 + sum(_expanded_size(c, memo) for c in children)
    memo[id(obj)] = min(size, YAML_MAX_NODES + 1)
    return memo[id(obj)]
