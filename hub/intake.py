"""What a bundle must pass before the hub accepts it: the agent's own acceptance checks
(agent.models.acceptance: an archive measured while it decompresses, within the size, ratio and
file-count limits, before anything is written; a manifest within the JSON limits; every file
listed in the signed manifest, nothing else; hashes and signature; the model loaded with its
runtime and its self-test passed), with the hub's limit settings, and names the registry can
store. One set of checks for ``edge-agent models import`` and ``edge-hub publish``."""

from __future__ import annotations

import re
from pathlib import Path

from agent.errors import BundleError
from agent.models import acceptance
from agent.models.bundle import Bundle, TrustedKey
from hub.limits import HubLimits, agent_limits

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,127}$")


def accept(bundle_path: Path, staging: Path, keys: list[TrustedKey], limits: HubLimits) -> Bundle:
    """The verified, loaded and self-tested bundle, or BundleError naming the reason."""
    if bundle_path.is_file() and bundle_path.stat().st_size > limits.upload_max_bytes:
        raise BundleError(f"bundle archive of {bundle_path.stat().st_size} bytes is over the limit of "
                          f"{limits.upload_max_bytes} (upload_max_bytes)")
    bundle = acceptance.check_archive(bundle_path, staging, keys, allow_unsigned=False,
                                      limits=agent_limits(limits))
    check_names(bundle)
    return bundle


def check_names(bundle: Bundle) -> None:
    """A model name and version the registry can store and a file system can hold."""
    m = bundle.manifest
    if not _NAME.fullmatch(m.name):
        raise BundleError(f"manifest name {m.name[:60]!r}: use 1-128 letters, digits, '.', '_', '+' or '-'")
    if not _NAME.fullmatch(m.version) or len(m.version) > 64:
        raise BundleError(f"manifest version {m.version[:60]!r}: use 1-64 letters, digits, '.', '_', "
                          "'+' or '-'")
