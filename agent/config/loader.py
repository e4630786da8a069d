"""YAML -> ${ENV} substitution -> validation, with errors that name the place and the fix;
and the file checks (preflight) that validation leaves out."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from agent.config.common import SecretFile
from agent.config.outputs import MqttLabelsConfig
from agent.config.service import AgentConfig
from agent.config.sources import (
    MqttBroker,
    MqttSourceConfig,
    OpcUaSourceConfig,
    SparkplugSourceConfig,
)
from agent.config.yamlsafe import read_config_text, safe_yaml
from agent.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/edge-agent/agent.yaml")

MAX_PROBLEMS = 50
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

def substitute_env(text: str, env: dict[str, str] | None = None) -> str:
    """Replace ${VAR} and ${VAR:-default}; an unset variable without default is an error."""
    env = dict(os.environ) if env is None else env
    missing: list[str] = []

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return ""

    result = _ENV_PATTERN.sub(repl, text)
    if missing:
        raise ConfigError([f"${{{n}}}: environment variable is not set (set it or give a default "
                           f"as ${{{n}:-value}})" for n in sorted(set(missing))])
    return result


def format_location(loc: tuple[Any, ...]) -> str:
    place = ""
    for part in loc:
        if isinstance(part, int):
            place += f"[{part}]"
        elif part in ("opcua", "mqtt", "sparkplug", "onnx", "tflite", "SecretStr", "SecretFile", "str"):
            continue  # discriminator / union branch names say nothing to the user
        elif isinstance(part, str) and ("[" in part or "function-after" in part):
            continue
        elif isinstance(part, str) and (len(part) > 60 or not part.isprintable() or not part):
            shown = f"{part[:40]!r}{'...' if len(part) > 40 else ''}"  # one line, whatever the key
            place += f".{shown}" if place else shown
        else:
            place += f".{part}" if place else str(part)
    return place or "(top level)"


def parse_config(data: Any) -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(["(top level): expected a mapping of settings, got "
                           f"{type(data).__name__}"])
    try:
        # through JSON in strict mode: `port: true` is not a number, `"5"` not an integer, and a
        # path or a tuple is still read from text and lists as YAML writes them
        text = json.dumps(data, default=str)
    except (TypeError, ValueError) as exc:
        raise ConfigError([f"(top level): {exc}; every key of a mapping must be plain text"]) from None
    try:
        return AgentConfig.model_validate_json(text, strict=True)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            place = format_location(tuple(err["loc"]))
            if "model" in data and place.startswith("models[0]"):
                place = "model" + place.removeprefix("models[0]")  # as the user wrote it
            problems.append(f"{place}: {_friendly(err)}")
        problems = list(dict.fromkeys(problems))
        if len(problems) > MAX_PROBLEMS:  # a pasted file gives thousands: the first ones say it
            problems = [*problems[:MAX_PROBLEMS], f"... and {len(problems) - MAX_PROBLEMS} more"]
        raise ConfigError(problems) from None


def _friendly(err: Any) -> str:
    """Say what to do, not only what pydantic checked."""
    kind, ctx = err["type"], err.get("ctx") or {}
    given = err.get("input")
    if kind in ("int_type", "float_type", "int_parsing", "float_parsing") and isinstance(given, bool):
        return f"expected a number, got {'true' if given else 'false'} (write a number such as 1883)"
    if kind == "int_type" and isinstance(given, float):
        return f"expected a whole number, got {_shown(given)}"
    if kind in ("int_type", "float_type") and isinstance(given, str):
        return (f"expected a number, got the text {_shown(given)} (remove the quotes; YAML reads "
                "1e5 as text: write 100000 or 1.0e+5)")
    if kind == "finite_number":
        return "must be a finite number (not .inf, .nan or a value beyond 1.8e308)"
    if kind == "string_too_long":
        size = len(given) if isinstance(given, str) else "too many"
        return f"{size} characters, more than the {ctx.get('max_length')} allowed"
    if kind == "extra_forbidden":
        return "unknown setting (check the spelling; 'edge-agent config-schema' lists them all)"
    if kind == "union_tag_invalid":
        return f"unknown type '{ctx.get('tag')}'; expected one of {ctx.get('expected_tags')}"
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "node_id":
        return (f"{_shown(given)} is not an OPC UA node id; use 'ns=2;i=1001' or "
                "'ns=3;s=Machine.Tag'")
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "endpoint":
        return f"{_shown(given)} is not an OPC UA endpoint; use opc.tcp://host:4840"
    if kind == "string_pattern_mismatch" and err["loc"][-1] == "gateway_id":
        return "use only letters, digits, '.', '_' and '-', starting with a letter or digit"
    if kind == "missing":
        return "required setting is missing"
    return str(err["msg"]).removeprefix("Value error, ")


def _shown(value: Any) -> str:
    """A user's value in a message: quoted, and cut, so a 5 MB paste stays one line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:40] + f"... ({len(str(value))} characters)"


def load_config(path: Path, env: dict[str, str] | None = None) -> AgentConfig:
    return parse_config(load_config_dict(path, env))


def load_config_dict(path: Path, env: dict[str, str] | None = None) -> Any:
    """The file's settings after ${ENV} substitution, before validation (the base that config
    overlays from the hub are merged over)."""
    text = substitute_env(read_config_text(path), env)
    return safe_yaml(text, str(path))


CREDENTIALS_SOURCE = Path("/etc/edge-agent/credentials")  # where LoadCredential= reads them
CREDENTIAL_ID = "secret_"  # LoadCredential=secret:DIR names a file NAME of DIR secret_NAME


def preflight(cfg: AgentConfig, credentials_dir: Path | None = None,
              running: bool = False) -> list[str]:
    """File checks that validation leaves out: named files must exist and be readable.

    A secret under /run/credentials/<unit>/ exists only while the service runs (systemd's
    LoadCredential= copies it there at start). Checked outside the service (no
    $CREDENTIALS_DIRECTORY), it is looked up where the unit loads it from: secret_NAME in
    /etc/edge-agent/credentials/NAME, or ``credentials_dir``/NAME. ``running``: the agent is
    about to read them, so every path is checked as written."""
    problems: list[str] = []
    in_service = bool(os.environ.get("CREDENTIALS_DIRECTORY"))

    def need(path: Path | None, place: str) -> None:
        if path is None:
            return
        outside = credentials_dir is not None or not in_service
        if path.parts[:3] == ("/", "run", "credentials") and outside and not running:
            source = (credentials_dir or CREDENTIALS_SOURCE) / path.name.removeprefix(CREDENTIAL_ID)
            if not source.exists():
                problems.append(f"{place}: {path} is loaded by the service from {source}, which "
                                f"does not exist: create it (mode 0640, group edge-agent)")
            return
        if not path.exists():
            problems.append(f"{place}: file not found: {path}")

    for i, src in enumerate(cfg.sources):
        if isinstance(src, OpcUaSourceConfig):
            sec = src.security
            need(sec.certificate, f"sources[{i}].security.certificate")
            need(sec.private_key, f"sources[{i}].security.private_key")
            need(sec.server_certificate, f"sources[{i}].security.server_certificate")
            if sec.trust_dir is not None and not sec.trust_dir.is_dir():
                problems.append(f"sources[{i}].security.trust_dir: not a directory: {sec.trust_dir} "
                                "(create it and put the server's certificate in it)")
            if isinstance(src.password, SecretFile):
                need(src.password.file, f"sources[{i}].password.file")
            problem = _certificate_uri_problem(sec.certificate, src.uri_for(cfg.gateway_id))
            if problem:
                problems.append(f"sources[{i}].security.certificate: {problem}")
        elif isinstance(src, MqttSourceConfig | SparkplugSourceConfig):
            _check_broker(src.broker, f"sources[{i}].broker", need)
    if cfg.outputs.mqtt:
        _check_broker(cfg.outputs.mqtt.broker, "outputs.mqtt.broker", need)
    if cfg.outputs.sparkplug:
        _check_broker(cfg.outputs.sparkplug.broker, "outputs.sparkplug.broker", need)
    if isinstance(cfg.labels, MqttLabelsConfig):
        _check_broker(cfg.labels.broker, "labels.broker", need)
    if cfg.hub is not None:
        need(cfg.hub.ca_file, "hub.ca_file")
        if isinstance(cfg.hub.token, SecretFile):
            need(cfg.hub.token.file, "hub.token.file")
    for m, entry in enumerate(cfg.models):
        for i, key in enumerate(entry.trusted_keys):
            need(key, f"models[{m}].trusted_keys[{i}]" if len(cfg.models) > 1 or not entry.shorthand
                 else f"model.trusted_keys[{i}]")
    return problems


def _certificate_uri_problem(path: Path | None, uri: str) -> str | None:
    """A client certificate whose URI SAN is not the ApplicationUri the agent sends is refused
    by every server (BadCertificateUriInvalid): say so before the first contact."""
    if path is None or not path.is_file():
        return None
    from cryptography import x509

    try:
        data = path.read_bytes()
        cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                else x509.load_der_x509_certificate(data))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = san.get_values_for_type(x509.UniformResourceIdentifier)
    except (OSError, ValueError, x509.ExtensionNotFound):
        return f"{path} is not a certificate with a URI; make one: edge-agent opcua certs create"
    if uri not in uris:
        return (f"holds URI {', '.join(uris) or '(none)'} but the agent sends ApplicationUri {uri} "
                "(servers answer BadCertificateUriInvalid): set application_uri to match, or "
                "run `edge-agent opcua certs create --force`")
    return None


def _check_broker(broker: MqttBroker, place: str, need: Any) -> None:
    if isinstance(broker.password, SecretFile):
        need(broker.password.file, f"{place}.password.file")
    if broker.tls:
        need(broker.tls.ca_file, f"{place}.tls.ca_file")
        need(broker.tls.cert_file, f"{place}.tls.cert_file")
        need(broker.tls.key_file, f"{place}.tls.key_file")
