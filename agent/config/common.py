"""Shared pieces of the config models: the strict base, secrets, TLS and backoff settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# longer than any host name, topic, node id, path or token a plant uses; a 5 MB value is a
# pasted file or an attack, refused with the place named
MAX_STRING = 4096
INT64 = (-(2**63), 2**63 - 1)


class Strict(BaseModel):
    """The base of every config model: unknown keys, infinities, NaN and oversized strings are
    refused, and every integer fits 64 bits (what SQLite and the hub store). The loader also
    validates in strict mode, so `true` is not a number and `"5"` is not an integer."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False,
                              str_max_length=MAX_STRING)

    @field_validator("*", mode="after")
    @classmethod
    def _int64(cls, value: Any) -> Any:
        if _out_of_int64(value):
            raise ValueError(f"must fit in 64 bits (between {INT64[0]} and {INT64[1]})")
        return value


def _out_of_int64(value: Any, depth: int = 0) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return not INT64[0] <= value <= INT64[1]
    if depth < 3 and isinstance(value, list | tuple):
        return any(_out_of_int64(v, depth + 1) for v in value)
    if depth < 3 and isinstance(value, dict):
        return any(_out_of_int64(v, depth + 1) for v in value.values())
    return False


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
