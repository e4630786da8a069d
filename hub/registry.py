"""Model registry: a bundle is accepted only if it passes the acceptance checks (hub.intake:
limits, every file listed, hashes and signature against the hub's trusted keys, the model loads
and passes its self-test); versions are immutable; archives are stored by manifest sha256."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from agent.models.bundle import Bundle, sha256_file
from hub.fleet import artifacts
from hub.intake import accept
from hub.limits import HubLimits
from hub.storage import ModelVersion, record


class HubError(AgentError):
    """A registry or deployment request that cannot be honoured (the message says why)."""


def trusted_keys(data_dir: Path, extra: list[Path] | None = None) -> list[Path]:
    """Keys the hub trusts: DATA/trusted-keys/*.pub plus any named on the command line."""
    return sorted((data_dir / "trusted-keys").glob("*.pub")) + list(extra or [])


def publish(engine: Engine, data_dir: Path, bundle_path: Path, keys: list[Path],
            limits: HubLimits | None = None) -> Bundle:
    limits = limits or HubLimits()
    if not keys:
        raise HubError("no trusted keys: put public keys in DATA/trusted-keys/ or pass --trusted-key")
    staging = Path(tempfile.mkdtemp(prefix="publish-"))
    try:
        return register(engine, data_dir, accept(bundle_path, staging, list(keys), limits))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def register(engine: Engine, data_dir: Path, bundle: Bundle) -> Bundle:
    """Store a verified bundle as an immutable version (its archive holds only what the
    manifest covers) and record it."""
    m = bundle.manifest
    with Session(engine) as s, s.begin():
        existing = s.scalars(select(ModelVersion).where(
            ModelVersion.name == m.name, ModelVersion.version == m.version)).first()
        if existing is not None:
            if existing.sha256 != bundle.sha256:
                raise HubError(f"{m.name} {m.version} exists with other contents; versions are "
                               "immutable: publish a new version")
            return bundle
        target = data_dir / "bundles" / f"{bundle.sha256}.tar"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".part")
        with tarfile.open(tmp, "w") as tar:  # only what the manifest covers
            for name in ["manifest.json", "manifest.sig", *sorted(m.files)]:
                if (bundle.path / name).is_file():
                    tar.add(bundle.path / name, arcname=f"{m.name}-{m.version}/{name}")
        tmp.replace(target)
        artifacts.put(s, artifacts.bundle_key(bundle.sha256), "bundle", target)  # every hub machine's
        s.add(ModelVersion(name=m.name, version=m.version, sha256=bundle.sha256,
                           manifest=json.loads((bundle.path / "manifest.json").read_text()),
                           created=time.time(), archive_sha256=sha256_file(target),
                           size=target.stat().st_size))
        record(s, m.name, m.version, "published",
               detail=f"signed by {bundle.signed_by}; reason: {m.lineage.get('reason') or 'not given'}")
    return bundle


def list_versions(engine: Engine, model: str | None = None) -> list[dict[str, Any]]:
    with Session(engine) as s:
        q = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.id)
        if model:
            q = q.where(ModelVersion.name == model)
        return [{"name": v.name, "version": v.version, "sha256": v.sha256, "created": v.created,
                 "size": v.size, "lineage": v.manifest.get("lineage", {}),
                 "metrics": v.manifest.get("metrics", {}), "manifest": v.manifest}
                for v in s.scalars(q)]
