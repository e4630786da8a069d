"""Shared pieces of the config models: the strict base, secrets, TLS and backoff settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr


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
