"""Model registry: a bundle is accepted only if its hashes and signature verify against the
hub's trusted keys; versions are immutable; archives are stored by manifest sha256."""

from __future__ import annotations

import json
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.bundle import Bundle, unpack, verify_bundle
from agent.errors import AgentError
from hub.db import Deployment, Gateway, ModelVersion


class HubError(AgentError):
    """A registry or deployment request that cannot be honoured (the message says why)."""


def publish(engine: Engine, data_dir: Path, bundle_path: Path, trusted_keys: list[Path]) -> Bundle:
    staging = Path(tempfile.mkdtemp(prefix="publish-"))
    try:
        bundle = verify_bundle(unpack(bundle_path, staging), trusted_keys, allow_unsigned=False)
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
            with tarfile.open(tmp, "w") as tar:
                tar.add(bundle.path, arcname=f"{m.name}-{m.version}")
            tmp.replace(target)
            s.add(ModelVersion(name=m.name, version=m.version, sha256=bundle.sha256,
                               manifest=json.loads((bundle.path / "manifest.json").read_text()),
                               created=time.time()))
        return bundle
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def deploy(engine: Engine, model: str, version: str, target: str, strategy: str) -> None:
    if strategy != "immediate":
        raise HubError(f"--strategy {strategy}: canary and shadow deployments are not built yet; "
                       "use immediate")
    with Session(engine) as s, s.begin():
        if s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                ModelVersion.version == version)).first() is None:
            raise HubError(f"{model} {version} is not published; edge-hub publish it first")
        if not target.startswith("group:") and s.get(Gateway, target) is None:
            raise HubError(f"--to {target}: no such gateway (edge-hub gateways add {target})")
        s.add(Deployment(target=target, model=model, version=version, strategy=strategy,
                         created=time.time()))
