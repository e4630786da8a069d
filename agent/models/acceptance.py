"""What it takes for a bundle to be accepted at all: hashes and signature (``verify_bundle``),
then the model loaded by its own runtime and its self-test passed. ``models import`` runs it
before a version is installed, and the hub's publish may call it before a version is
registered, so garbage ONNX or a failing self-test is refused at the door, not at activation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from agent.config import OnnxRuntimeConfig, RuntimeConfig, TfliteRuntimeConfig
from agent.config.limits import DEFAULT_LIMITS, InputLimits
from agent.errors import BundleError, InferenceError, RuntimeLoadError
from agent.inference.runtimes import load_runtime
from agent.models.bundle import Bundle, TrustedKey, run_self_test, unpack, verify_bundle


def check_bundle(directory: Path, trusted_keys: Sequence[TrustedKey], allow_unsigned: bool = False,
                 limits: InputLimits = DEFAULT_LIMITS, threads: int = 1) -> Bundle:
    """Verify, load and self-test a bundle directory; BundleError naming the reason."""
    bundle = verify_bundle(directory, trusted_keys, allow_unsigned, limits)
    config: RuntimeConfig = (TfliteRuntimeConfig(type="tflite", threads=threads)
                             if bundle.manifest.runtime == "tflite"
                             else OnnxRuntimeConfig(type="onnx", threads=threads))
    try:
        runtime = load_runtime(config, bundle.model_path, len(bundle.manifest.inputs))
    except RuntimeLoadError as exc:
        raise BundleError(f"{bundle.label}: the model does not load ({_short(exc)})") from None
    except ImportError as exc:
        raise BundleError(f"{bundle.label}: runtime {bundle.manifest.runtime} is not installed "
                          f"({exc}); install the agent's tflite extra") from None
    try:
        run_self_test(bundle, runtime.predict)
    except InferenceError as exc:
        raise BundleError(f"{bundle.label}: self-test failed, the model cannot run its own "
                          f"sample inputs ({_short(exc)})") from None
    return bundle


def check_archive(path: Path, staging: Path, trusted_keys: Sequence[TrustedKey],
                  allow_unsigned: bool = False, limits: InputLimits = DEFAULT_LIMITS) -> Bundle:
    """``check_bundle`` of a tar (unpacked into ``staging`` within the limits) or a directory."""
    return check_bundle(unpack(path, staging, limits), trusted_keys, allow_unsigned, limits)


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 300 else text[:300] + "..."
