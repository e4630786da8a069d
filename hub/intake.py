"""What a bundle must pass before the hub accepts it, beyond hashes and signature: an archive
within the size, file-count and unpacked-size limits (checked from the headers, before anything
is extracted; links, devices and sparse files refused), a manifest within the JSON limits, no
file the manifest does not list, and a model that loads with its runtime and passes its
self-test."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path, PurePosixPath

from agent.config import OnnxRuntimeConfig, RuntimeConfig, TfliteRuntimeConfig
from agent.errors import AgentError, BundleError
from agent.inference.runtimes import load_runtime
from agent.models.bundle import MANIFEST, SIGNATURE, Bundle, run_self_test
from hub.limits import HubLimits, LimitError, parse_json


def check_archive(path: Path, limits: HubLimits) -> None:
    """Read the tar headers as a stream (a .tar.gz is inflated as it goes, never whole)."""
    size = path.stat().st_size
    if size > limits.max_bundle_bytes:
        raise BundleError(f"bundle archive of {size} bytes is over the limit of {limits.max_bundle_bytes}")
    entries = declared = 0
    try:
        with tarfile.open(path, mode="r|*") as tar:
            for member in tar:
                entries += 1
                if entries > limits.max_bundle_files:
                    raise BundleError(f"bundle archive holds more than {limits.max_bundle_files} entries")
                name = PurePosixPath(member.name)
                if len(member.name) > 255 or len(name.parts) > 3 or ".." in name.parts or name.is_absolute():
                    raise BundleError(f"bundle archive entry {member.name[:80]!r}: not a plain bundle path")
                if not (member.isreg() or member.isdir()) or member.issparse():
                    raise BundleError(f"bundle archive entry {member.name[:80]!r} is not a regular file "
                                      "or folder (links, devices and sparse files are refused)")
                declared += member.size
                if declared > limits.max_bundle_unpacked_bytes:
                    raise BundleError(f"bundle unpacks to more than {limits.max_bundle_unpacked_bytes} bytes")
                if declared > limits.ratio_grace_bytes and declared > limits.max_ratio * size:
                    raise BundleError(f"bundle unpacks to more than {limits.max_ratio:g} times its size "
                                      "(a decompression bomb?)")
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise BundleError(f"not a readable bundle archive ({str(exc)[:200]})") from None


def check_manifest_file(bundle_dir: Path, limits: HubLimits) -> None:
    """The manifest within the JSON limits (depth above all: a deep one is a RecursionError in
    the standard parser)."""
    path = bundle_dir / MANIFEST
    if not path.is_file():
        raise BundleError(f"no {MANIFEST}; is this a model bundle?")
    if path.stat().st_size > limits.max_manifest_bytes:
        raise BundleError(f"{MANIFEST} is over {limits.max_manifest_bytes} bytes")
    try:
        parse_json(path.read_bytes(), limits, MANIFEST)
    except LimitError as exc:
        raise BundleError(str(exc)) from None


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def check_names(bundle: Bundle) -> None:
    """A model name and version the registry can store and a file system can hold."""
    m = bundle.manifest
    if not _NAME.fullmatch(m.name):
        raise BundleError(f"manifest name {m.name[:60]!r}: use 1-128 letters, digits, '.', '_', '+' or '-'")
    if not _NAME.fullmatch(m.version) or len(m.version) > 64:
        raise BundleError(f"manifest version {m.version[:60]!r}: use 1-64 letters, digits, '.', '_', "
                          "'+' or '-'")


def check_listed(bundle: Bundle) -> None:
    """Every file of the bundle is listed (and so hashed and signed) in its manifest."""
    listed = set(bundle.manifest.files) | {MANIFEST, SIGNATURE}
    for p in sorted(bundle.path.iterdir()):
        if p.is_dir() or p.name not in listed:
            kind = "folder" if p.is_dir() else "file"
            raise BundleError(f"{bundle.label}: the bundle carries the {kind} {p.name}, which its manifest "
                              "does not list (unsigned content is refused)")


def check_model(bundle: Bundle) -> None:
    """Load the model with the runtime its manifest names and run the self-test."""
    runtime: RuntimeConfig = (TfliteRuntimeConfig(type="tflite") if bundle.manifest.runtime == "tflite"
                              else OnnxRuntimeConfig(type="onnx"))
    try:
        loaded = load_runtime(runtime, bundle.model_path, len(bundle.manifest.inputs))
    except ImportError as exc:
        raise BundleError(f"{bundle.label}: cannot check a {bundle.manifest.runtime} model here "
                          f"({exc}); install the hub with that runtime") from None
    except AgentError as exc:
        raise BundleError(f"{bundle.label}: the model does not load: {exc}") from None
    except Exception as exc:  # a runtime's own error on a garbage model file
        raise BundleError(f"{bundle.label}: the model does not load with {bundle.manifest.runtime} "
                          f"({type(exc).__name__}: {str(exc)[:200]})") from None
    try:
        run_self_test(bundle, loaded.predict)
    except BundleError:
        raise
    except Exception as exc:  # a model that loads but fails on its own sample inputs
        raise BundleError(f"{bundle.label}: self-test could not run ({type(exc).__name__}: "
                          f"{str(exc)[:200]})") from None
