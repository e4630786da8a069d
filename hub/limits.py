"""Limits where input enters the hub, each a setting with a safe default (``edge-hub serve
--limits FILE``; ``edge-hub limits`` prints them), and the bounded readers that enforce them:
streamed decompression (a bomb is stopped at the limit, never inflated whole), JSON parsed with
a nesting limit and checked for 64-bit integers, finite numbers and string lengths."""

from __future__ import annotations

import math
import zlib
from pathlib import Path
from typing import Any

import pydantic_core
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config.limits import InputLimits
from agent.errors import AgentError

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
MiB = 1 << 20


class LimitError(AgentError):
    """Input over a limit or malformed; ``status`` is the HTTP answer, ``field`` the place."""

    def __init__(self, message: str, status: int = 422, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.field = field


class HubLimits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    max_body_bytes: int = Field(16 * MiB, ge=1024, le=1 << 31, description=(
        "Largest telemetry body as sent (compressed); larger: 413. The agent sends at most 4 MiB "
        "of payload per batch."))
    max_inflated_bytes: int = Field(24 * MiB, ge=1024, le=1 << 31, description=(
        "Largest telemetry body once decompressed; decompression stops there (413)."))
    max_ratio: float = Field(100.0, ge=2, le=100_000, allow_inf_nan=False, description=(
        "Largest decompressed/compressed ratio of a body past the first "
        "ratio_grace_bytes (413): a bomb is stopped within a few chunks."))
    ratio_grace_bytes: int = Field(1 * MiB, ge=0, le=1 << 31, description=(
        "Output below this size is never refused for its ratio (small bodies compress well)."))
    max_json_bytes: int = Field(1 * MiB, ge=1024, le=1 << 30, description=(
        "Largest JSON body (status reports, deployments, config overlays); larger: 413."))
    json_max_depth: int = Field(32, ge=4, le=150, description=(
        "Deepest nesting of arrays and objects in any JSON body, record or manifest (422)."))
    max_string_chars: int = Field(65_536, ge=128, le=1 << 24, description=(
        "Longest string anywhere in a JSON body, record or manifest (422)."))
    max_record_inflated_bytes: int = Field(8 * MiB, ge=1024, le=1 << 30, description=(
        "Largest training-sample or audit record once decompressed at ingest (skipped, logged)."))
    max_timestamp: float = Field(4_102_444_800.0, gt=0, allow_inf_nan=False, description=(
        "Latest epoch time a client may send (created, since); default 2100-01-01. Earliest: 0."))
    upload_max_bytes: int = Field(512 * MiB, ge=1024, le=1 << 40, description=(
        "Largest bundle archive uploaded to POST /api/v1/models, as sent (413)."))
    # the bundle settings carry the names of the agent's own (agent.config.limits.InputLimits):
    # publish runs the same acceptance checks, and their messages name these settings
    bundle_max_bytes: int = Field(1024 * MiB, ge=MiB, le=1 << 40, description=(
        "Largest bundle once unpacked; an archive is measured while it decompresses, before "
        "anything is written."))
    bundle_max_files: int = Field(32, ge=2, le=10_000, description=(
        "Most files in a bundle (manifest and signature included)."))
    bundle_max_ratio: float = Field(200.0, ge=1, le=100_000, allow_inf_nan=False, description=(
        "Largest unpacked/packed size ratio of a compressed bundle archive."))
    manifest_max_bytes: int = Field(8 * MiB, ge=4096, le=1 << 30, description=(
        "Largest manifest.json in a bundle."))
    audit_resend_window_s: float = Field(3600.0, ge=0, le=30 * 86400, allow_inf_nan=False, description=(
        "How long a gap in a gateway's audit chain may wait for the agent to resend the missing "
        "entry before the chain is flagged broken (with the reason)."))
    token_cache_s: float = Field(30.0, ge=0, le=3600, allow_inf_nan=False, description=(
        "How long a known token is trusted without asking the database (a revoked token stops "
        "working within this time)."))
    max_cached_tokens: int = Field(100_000, ge=100, le=10_000_000, description=(
        "Tokens remembered at most; unknown tokens can never fill memory."))

    @classmethod
    def load(cls, path: Path | None) -> HubLimits:
        """Defaults, or the settings of a YAML/JSON file (unknown keys refused)."""
        if path is None:
            return cls()
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise AgentError(f"{path}: not a readable YAML file ({str(exc).splitlines()[0]})") from None
        try:
            return cls.model_validate(doc or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "(top level)"
            raise AgentError(f"{path}: {where}: {err['msg']} (edge-hub limits lists the settings)") from None


class Inflater:
    """Decompress a body as it streams in, refusing it as soon as it passes the size or ratio
    limit: memory holds at most the limit, whatever the body claims."""

    CHUNK = 256 << 10

    def __init__(self, encoding: str | None, max_out: int, limits: HubLimits) -> None:
        encoding = (encoding or "identity").strip().lower()
        if encoding not in ("identity", "gzip", "x-gzip", "deflate"):
            raise LimitError(f"Content-Encoding {encoding[:40]!r} is not supported; use gzip or none",
                             415, "Content-Encoding")
        self._d = None if encoding == "identity" else zlib.decompressobj(
            wbits=31 if "gzip" in encoding else 15)
        self.max_out, self.limits = max_out, limits
        self.consumed = 0
        self.out = bytearray()

    def feed(self, chunk: bytes) -> None:
        self.consumed += len(chunk)
        if self._d is None:
            self._append(chunk)
            return
        if self._d.eof:
            if chunk:
                raise LimitError("data after the end of the compressed stream", 400, "body")
            return
        data = chunk
        while data:
            try:
                piece = self._d.decompress(data, self.CHUNK)
            except zlib.error as exc:
                raise LimitError(f"body is not valid {self._name}: {exc}", 400, "body") from None
            self._append(piece)
            if self._d.eof:
                if self._d.unused_data:
                    raise LimitError("data after the end of the compressed stream", 400, "body")
                return
            data = self._d.unconsumed_tail

    def finish(self) -> bytearray:
        if self._d is not None and not self._d.eof:
            raise LimitError(f"body is a truncated {self._name} stream", 400, "body")
        return self.out

    @property
    def _name(self) -> str:
        return "gzip/deflate data"

    def _append(self, piece: bytes) -> None:
        self.out += piece
        n = len(self.out)
        if n > self.max_out:
            raise LimitError(f"body over {self.max_out} bytes once decompressed; send smaller "
                             "batches", 413, "body")
        if self._d is not None and n > self.limits.ratio_grace_bytes and \
                n > self.limits.max_ratio * max(self.consumed, 1):
            raise LimitError(f"body decompresses more than {self.limits.max_ratio:g} times its "
                             "size (a decompression bomb?)", 413, "body")


def parse_json(data: bytes | bytearray | str, limits: HubLimits, where: str = "body") -> Any:
    """JSON with the hub's limits: no NaN/Infinity, nesting, integer range, string length."""
    try:
        # NaN and Infinity are parsed, so that the walk below can name where they are
        value = pydantic_core.from_json(data, allow_inf_nan=True)
    except ValueError as exc:
        if "recursion limit" in str(exc):
            why = f"{where}: nested deeper than {limits.json_max_depth} levels"
            raise LimitError(why, 422, where) from None
        raise LimitError(f"{where}: not valid JSON ({str(exc)[:160]})", 422, where) from None
    check_value(value, limits, where)
    return value


def check_value(value: Any, limits: HubLimits, where: str = "body") -> None:
    """Walk a parsed document without recursion; raise naming the first place over a limit."""
    stack: list[tuple[Any, str, int]] = [(value, where, 1)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, dict | list):
            if depth > limits.json_max_depth:
                raise LimitError(f"{path}: nested deeper than {limits.json_max_depth} levels", 422, path)
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, item in items:
                if isinstance(k, str) and len(k) > limits.max_string_chars:
                    raise LimitError(f"{path}: a key longer than {limits.max_string_chars} characters",
                                     422, path)
                stack.append((item, f"{path}.{k}" if isinstance(v, dict) else f"{path}[{k}]", depth + 1))
        elif isinstance(v, bool) or v is None:
            continue
        elif isinstance(v, int):
            if not INT64_MIN <= v <= INT64_MAX:
                raise LimitError(f"{path}: integer outside the 64-bit signed range", 422, path)
        elif isinstance(v, float):
            if not math.isfinite(v):
                raise LimitError(f"{path}: not a finite number", 422, path)
        elif isinstance(v, str) and len(v) > limits.max_string_chars:
            raise LimitError(f"{path}: string longer than {limits.max_string_chars} characters", 422, path)


def decode_record_json(blob: bytes, limits: HubLimits) -> Any:
    """A record's zlib-compressed JSON payload (training samples, audit entries), inflated no
    further than ``max_record_inflated_bytes``."""
    d = zlib.decompressobj()
    try:
        out = d.decompress(blob, limits.max_record_inflated_bytes + 1)
    except zlib.error as exc:
        raise LimitError(f"payload is not zlib data ({exc})") from None
    if len(out) > limits.max_record_inflated_bytes:
        raise LimitError(f"payload over {limits.max_record_inflated_bytes} bytes once decompressed")
    if not d.eof:
        raise LimitError("payload is a truncated zlib stream")
    return parse_json(out, limits, "payload")


def agent_limits(limits: HubLimits) -> InputLimits:
    """The agent's acceptance limits with the hub's settings (bundles, manifests, JSON depth)."""
    return InputLimits(json_max_depth=limits.json_max_depth, bundle_max_bytes=limits.bundle_max_bytes,
                       bundle_max_files=limits.bundle_max_files, bundle_max_ratio=limits.bundle_max_ratio,
                       manifest_max_bytes=limits.manifest_max_bytes)
