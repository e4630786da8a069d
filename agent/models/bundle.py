"""Model bundle: the unit of deployment and governance.

A bundle is a directory (or a tar of one) holding the model file, ``manifest.json`` and,
when signed, ``manifest.sig``: a detached Ed25519 signature over the exact manifest bytes.
The manifest lists the sha256 of every other file, so the signature covers the model too; a
file it does not list is refused, so nothing unsigned rides along. Archives are unpacked within
limits (``limits.bundle_*``): unpacked size, decompression ratio and file count are measured
while the archive streams, before anything is written, and only regular files are extracted,
each name once.
"""

from __future__ import annotations

import base64
import bz2
import gzip
import hashlib
import io
import json
import logging
import lzma
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.config.limits import DEFAULT_LIMITS, InputLimitError, InputLimits, loads_json
from agent.errors import BundleError

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
SIGNATURE = "manifest.sig"
FORMAT_VERSION = 1


class _Model(BaseModel):
    # extra fields are kept: later formats add to the manifest without breaking older agents
    model_config = ConfigDict(extra="allow", frozen=True)


class InputSpec(_Model):
    name: str = Field(description="Feature name.")
    tag: str = Field(description="Source tag feeding the feature.")
    dtype: Literal["float32"] = Field("float32", description="Element type fed to the model.")
    kind: Literal["numeric", "categorical"] = Field(
        "numeric", description="Categorical inputs are codes, watched by category counts.")


class OutputSpec(_Model):
    kind: Literal["classifier", "regression"]
    classes: list[str] = Field(default_factory=list, description="Class labels in score order.")
    positive_class: str | None = Field(None, description="Class whose score is monitored.")


class SelfTest(_Model):
    inputs: list[list[float]]
    expected_scores: list[list[float]]
    expected_labels: list[str] | None = None
    tolerance: float = 1e-4


class Manifest(_Model):
    format: int = FORMAT_VERSION
    name: str
    version: str
    runtime: Literal["onnx", "tflite"]
    model_file: str
    inputs: list[InputSpec] = Field(min_length=1)
    output: OutputSpec
    profile: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    lineage: dict[str, Any] = Field(default_factory=dict)
    self_test: SelfTest
    files: dict[str, str] = Field(description="File name -> sha256 of every file but the manifest.")
    created: str


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: Manifest
    sha256: str  # of manifest.json: identifies the bundle, and covers every file through it
    signed_by: str | None  # fingerprint of the key that signed it

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest.model_file

    @property
    def label(self) -> str:
        return f"{self.manifest.name} {self.manifest.version}"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def key_fingerprint(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair(private_path: Path, public_path: Path) -> str:
    key = Ed25519PrivateKey.generate()
    private_path.parent.mkdir(parents=True, exist_ok=True)
    private_path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    private_path.chmod(0o600)
    public_path.write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return key_fingerprint(key.public_key())


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BundleError(f"{path}: not a readable PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a readable unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key")
    return key


def sign_bundle(bundle_dir: Path, private_key: Path) -> str:
    key = load_private_key(private_key)
    manifest_bytes = (bundle_dir / MANIFEST).read_bytes()
    (bundle_dir / SIGNATURE).write_bytes(base64.b64encode(key.sign(manifest_bytes)) + b"\n")
    return key_fingerprint(key.public_key())


def write_manifest(bundle_dir: Path, manifest: dict[str, Any]) -> None:
    manifest["files"] = {
        p.name: sha256_file(p)
        for p in sorted(bundle_dir.iterdir())
        if p.is_file() and p.name not in (MANIFEST, SIGNATURE)
    }
    Manifest.model_validate(manifest)  # never write a manifest we would refuse to read
    (bundle_dir / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def unpack(path: Path, staging: Path, limits: InputLimits = DEFAULT_LIMITS) -> Path:
    """Return a directory holding the bundle: ``path`` itself, or a tar extracted to staging
    (in a folder named after this process, so a later start knows it is left over)."""
    if path.is_dir():
        return path
    if not path.exists():
        raise BundleError(f"{path}: bundle not found")
    measure_archive(path, limits)
    target = Path(tempfile.mkdtemp(prefix=f"bundle-{os.getpid()}-", dir=staging))
    try:
        with tarfile.open(path) as tar:
            members = _checked_members(tar, path, limits)
            tar.extractall(target, members=members, filter="data")  # no links, nothing outside
    except (tarfile.TarError, OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        shutil.rmtree(target, ignore_errors=True)
        why = " ".join(str(exc).split())[:300]  # tarfile lists each method tried on its own line
        raise BundleError(f"{path}: not a readable bundle archive ({why})") from None
    except BundleError:
        shutil.rmtree(target, ignore_errors=True)
        raise
    entries = [p for p in target.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():  # tar made of the bundle's folder
        return entries[0]
    return target


def measure_archive(path: Path, limits: InputLimits = DEFAULT_LIMITS) -> int:
    """Stream the archive through its decompressor without keeping it: refuse it when it
    unpacks to more than ``bundle_max_bytes`` or ``bundle_max_ratio`` times its own size.
    Returns the unpacked size."""
    packed = path.stat().st_size
    if packed > limits.bundle_max_bytes:
        raise BundleError(f"{path}: {packed} bytes, more than limits.bundle_max_bytes "
                          f"({limits.bundle_max_bytes})")
    with path.open("rb") as fh:
        opener = _decompressor(fh.read(6))
    if opener is None:
        return packed  # a plain tar: its size is what it unpacks to
    ceiling = min(limits.bundle_max_bytes, max(packed, 1 << 16) * limits.bundle_max_ratio)
    total = 0
    try:
        with opener(path) as stream:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
                if total > ceiling:
                    raise BundleError(
                        f"{path}: unpacks to more than {int(ceiling)} bytes from {packed} "
                        f"(limits.bundle_max_bytes {limits.bundle_max_bytes}, "
                        f"limits.bundle_max_ratio {limits.bundle_max_ratio:g}); refused as a "
                        "decompression bomb")
    except (OSError, EOFError, lzma.LZMAError, zlib.error) as exc:
        raise BundleError(f"{path}: not a readable bundle archive ({exc})") from None
    return total


def _decompressor(magic: bytes) -> Callable[[Path], io.BufferedIOBase] | None:
    """The stream that decompresses an archive, by its magic bytes (what tarfile accepts)."""
    if magic.startswith(b"\x1f\x8b"):
        return lambda p: gzip.open(p, "rb")
    if magic.startswith(b"BZh"):
        return lambda p: bz2.open(p, "rb")
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lambda p: lzma.open(p, "rb")
    return None


def _checked_members(tar: tarfile.TarFile, path: Path, limits: InputLimits) -> list[tarfile.TarInfo]:
    members: list[tarfile.TarInfo] = []
    names: set[str] = set()
    size = 0
    for member in tar:  # lazily: a million-entry archive stops at the limit, not in memory
        if member.isdir():
            continue
        if not member.isfile():
            raise BundleError(f"{path}: {member.name[:80]} is not a regular file (links, devices "
                              "and fifos are never part of a bundle)")
        name = os.path.normpath(member.name)
        if name in names:  # which copy is the bundle? readers differ (first or last wins)
            raise BundleError(f"{path}: {member.name[:80]} is in the archive more than once")
        names.add(name)
        members.append(member)
        size += member.size
        if len(members) > limits.bundle_max_files:
            raise BundleError(f"{path}: more than limits.bundle_max_files "
                              f"({limits.bundle_max_files}) files")
        if size > limits.bundle_max_bytes:
            raise BundleError(f"{path}: files add up to more than limits.bundle_max_bytes "
                              f"({limits.bundle_max_bytes})")
    dirs = [m for m in tar.getmembers() if m.isdir()]
    return dirs + members


TrustedKey = Path | Ed25519PublicKey


def verify_bundle(
    bundle_dir: Path, trusted_keys: Sequence[TrustedKey], allow_unsigned: bool = False,
    limits: InputLimits = DEFAULT_LIMITS,
) -> Bundle:
    """Check structure, every file hash and the signature. Raises BundleError naming the cause."""
    manifest_path = bundle_dir / MANIFEST
    try:
        if manifest_path.stat().st_size > limits.manifest_max_bytes:
            raise InputLimitError(f"larger than limits.manifest_max_bytes ({limits.manifest_max_bytes})")
        manifest_bytes = manifest_path.read_bytes()
        manifest = Manifest.model_validate(loads_json(manifest_bytes, limits.json_max_depth,
                                                      limits.manifest_max_bytes))
    except OSError:
        raise BundleError(f"{bundle_dir}: no {MANIFEST}; is this a model bundle?") from None
    except (ValueError, ValidationError, RecursionError) as exc:
        raise BundleError(f"{manifest_path}: invalid manifest ({_first_error(exc)})") from None
    if manifest.model_file not in manifest.files:
        raise BundleError(f"{manifest_path}: model file {manifest.model_file} has no hash listed")
    _only_listed_files(bundle_dir, manifest, limits)
    for name, expected in manifest.files.items():
        file = bundle_dir / name
        if Path(name).name != name or not file.is_file():
            raise BundleError(f"{bundle_dir}: file {name} listed in the manifest is missing")
        if sha256_file(file) != expected:
            raise BundleError(f"{bundle_dir}: {name} does not match its sha256 in the manifest "
                              "(tampered or truncated)")
    signed_by = _check_signature(bundle_dir, manifest_bytes, trusted_keys, allow_unsigned)
    return Bundle(bundle_dir, manifest, hashlib.sha256(manifest_bytes).hexdigest(), signed_by)


def _only_listed_files(bundle_dir: Path, manifest: Manifest, limits: InputLimits) -> None:
    """Every file in the bundle is one the manifest lists (and so the signature covers)."""
    allowed = {MANIFEST, SIGNATURE, *manifest.files}
    try:
        entries = list(os.scandir(bundle_dir))
    except OSError as exc:
        raise BundleError(f"{bundle_dir}: cannot list the bundle ({exc.strerror})") from None
    if len(entries) > limits.bundle_max_files:
        raise BundleError(f"{bundle_dir}: {len(entries)} entries, more than "
                          f"limits.bundle_max_files ({limits.bundle_max_files})")
    for entry in sorted(entries, key=lambda e: e.name):
        if entry.name not in allowed:
            raise BundleError(f"{bundle_dir}: {entry.name[:80]} is not listed in the manifest; a "
                              "bundle holds only the files its signed manifest names (rebuild it)")
        if not entry.is_file(follow_symlinks=False):
            raise BundleError(f"{bundle_dir}: {entry.name[:80]} is not a regular file")


def _check_signature(
    bundle_dir: Path, manifest_bytes: bytes, trusted_keys: Sequence[TrustedKey], allow_unsigned: bool
) -> str | None:
    sig_path = bundle_dir / SIGNATURE
    if not sig_path.exists():
        if allow_unsigned:
            log.warning("bundle %s is unsigned; accepted because allow_unsigned is set", bundle_dir)
            return None
        raise BundleError(f"{bundle_dir}: bundle is not signed (sign it with "
                          "'edge-agent bundle sign', or set model.allow_unsigned for tests)")
    try:
        signature = base64.b64decode(sig_path.read_bytes().strip(), validate=True)
    except ValueError:
        raise BundleError(f"{sig_path}: signature is not base64") from None
    for trusted in trusted_keys:
        key = load_public_key(trusted) if isinstance(trusted, Path) else trusted
        try:
            key.verify(signature, manifest_bytes)
            return key_fingerprint(key)
        except InvalidSignature:
            continue
    if allow_unsigned:
        log.warning("bundle %s signature matches no trusted key; accepted (allow_unsigned)",
                    bundle_dir)
        return None
    raise BundleError(f"{bundle_dir}: signature does not match any trusted key "
                      f"({len(trusted_keys)} configured in model.trusted_keys)")


def run_self_test(bundle: Bundle, predict: Any) -> None:
    """Feed the manifest's sample inputs and compare with the outputs recorded at build time."""
    test = bundle.manifest.self_test
    if not test.inputs:  # a self-test of nothing would pass any model
        raise BundleError(f"{bundle.label}: self-test has no sample inputs (self_test.inputs is "
                          "empty); rebuild the bundle")
    x = np.asarray(test.inputs, dtype=np.float32)
    out = predict(x)
    expected = np.asarray(test.expected_scores, dtype=np.float64)
    if out.scores.shape != expected.shape:
        raise BundleError(f"{bundle.label}: self-test output shape {out.scores.shape} "
                          f"differs from the recorded {expected.shape}")
    worst = float(np.max(np.abs(out.scores - expected))) if expected.size else 0.0
    if not worst <= test.tolerance:
        raise BundleError(f"{bundle.label}: self-test failed, outputs differ by {worst:.3g} "
                          f"(tolerance {test.tolerance})")


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)
