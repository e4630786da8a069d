"""Names that reach the hub from outside: gateway ids, group names, deployment targets, token
holders. One documented pattern each (docs/hub.md), checked where they enter: the CLI, the API
and storage."""

from __future__ import annotations

import re

from agent.errors import AgentError

# letters, digits, '.', '_' and '-' (what the agent's gateway_id allows), 1-128 characters and
# not only dots: no '/', no ':', no whitespace or control characters, so an id is safe in a URL
# path, a topic, a file name and a log line, and can never be read as 'group:NAME'
# (written without look-ahead, so the same pattern serves pydantic, OpenAPI and Python; the
# length is a separate bound: GATEWAY_ID_MAX)
GATEWAY_ID_PATTERN = r"^\.{0,127}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"
GATEWAY_ID_MAX = 128
GATEWAY_ID = re.compile(GATEWAY_ID_PATTERN)
TARGET_PATTERN = r"^(group:)?\.{0,127}[A-Za-z0-9_-][A-Za-z0-9_.-]{0,127}$"
TARGET_MAX = 6 + GATEWAY_ID_MAX
TOKEN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_NAME_PATTERN = TOKEN_NAME.pattern


class InvalidName(AgentError):
    """A gateway id, group, target or token name that does not follow its pattern."""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 60 else value[:60] + "...")


def check_gateway_id(value: str, what: str = "gateway id") -> str:
    if len(value) > GATEWAY_ID_MAX or not GATEWAY_ID.fullmatch(value):
        raise InvalidName(f"{what} {_shown(value)}: use 1-128 letters, digits, '.', '_' or '-' "
                          "(not only dots; no '/', ':', spaces or control characters)")
    return value


def check_group(value: str) -> str:
    return check_gateway_id(value.removeprefix("group:"), "group")


def check_target(value: str) -> str:
    """A gateway id or group:NAME (a bare group name is resolved by the deployment itself)."""
    if value.startswith("group:"):
        check_group(value)
    else:
        check_gateway_id(value, "target")
    return value


def check_token_name(value: str) -> str:
    if not TOKEN_NAME.fullmatch(value):
        raise InvalidName(f"token name {_shown(value)}: use 1-64 letters, digits, '.', '_', '@' "
                          "or '-', starting with a letter or digit")
    return value
