"""Model bundle: the unit of deployment and governance.

A bundle is a directory (or a tar of one) holding the model file, ``manifest.json`` and,
when signed, ``manifest.sig``: a detached Ed25519 signature over the exact manifest bytes.
The manifest lists the sha256 of every other file, so the signature covers the model too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

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


def unpack(path: Path, staging: Path) -> Path:
    """Return a directory holding the bundle: ``path`` itself, or a tar extracted to staging."""
    if path.is_dir():
        return path
    if not path.exists():
        raise BundleError(f"{path}: bundle not found")
    target = Path(tempfile.mkdtemp(prefix="bundle-", dir=staging))
    try:
        with tarfile.open(path) as tar:
            tar.extractall(target, filter="data")  # 'data' refuses links and paths outside
    except (tarfile.TarError, OSError, EOFError) as exc:
        shutil.rmtree(target, ignore_errors=True)
        raise BundleError(f"{path}: not a readable bundle archive ({exc})") from None
    entries = [p for p in target.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():  # tar made of the bundle's folder
        return entries[0]
    return target


TrustedKey = Path | Ed25519PublicKey


def verify_bundle(
    bundle_dir: Path, trusted_keys: Sequence[TrustedKey], allow_unsigned: bool = False
) -> Bundle:
    """Check structure, every file hash and the signature. Raises BundleError naming the cause."""
    manifest_path = bundle_dir / MANIFEST
    try:
        manifest_bytes = manifest_path.read_bytes()
        manifest = Manifest.model_validate(json.loads(manifest_bytes))
    except OSError:
        raise BundleError(f"{bundle_dir}: no {MANIFEST}; is this a model bundle?") from None
    except (ValueError, ValidationError) as exc:
        raise BundleError(f"{manifest_path}: invalid manifest ({_first_error(exc)})") from None
    if manifest.model_file not in manifest.files:
        raise BundleError(f"{manifest_path}: model file {manifest.model_file} has no hash listed")
    for name, expected in manifest.files.items():
        file = bundle_dir / name
        if Path(name).name != name or not file.is_file():
            raise BundleError(f"{bundle_dir}: file {name} listed in the manifest is missing")
        if sha256_file(file) != expected:
            raise BundleError(f"{bundle_dir}: {name} does not match its sha256 in the manifest "
                              "(tampered or truncated)")
    signed_by = _check_signature(bundle_dir, manifest_bytes, trusted_keys, allow_unsigned)
    return Bundle(bundle_dir, manifest, hashlib.sha256(manifest_bytes).hexdigest(), signed_by)


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
