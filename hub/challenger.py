"""One retrain run: snapshot, train (a command), build and sign the bundle, champion/challenger
on the newest holdout neither model trained on, then publish and deploy, or say why not."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import desc, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent import __version__
from agent.config import OnnxRuntimeConfig
from agent.errors import AgentError
from agent.inference.runtimes import load_runtime
from agent.models.builder import build_bundle
from agent.models.bundle import generate_keypair
from agent.monitor.calibrate import Budget
from hub import trainer as default_trainer
from hub.datasets import Snapshot, snapshot, trained_until
from hub.evaluation import compare, predictions_of_archive, predictions_of_bundle
from hub.fleet.artifacts import local_bundle
from hub.policy import DEFAULT_POLICY, policy_costs
from hub.registry import publish, trusted_keys
from hub.rollouts import RolloutPolicy, deploy
from hub.storage import Deployment, ModelPolicy, ModelVersion

log = logging.getLogger(__name__)


def hub_key(data_dir: Path) -> Path:
    """The hub's signing key for the bundles it builds; its public half is trusted by the hub."""
    key = data_dir / "keys" / "hub-signing.pem"
    if not key.exists():
        key.parent.mkdir(parents=True, exist_ok=True)
        generate_keypair(key, key.with_suffix(".pub"))
    trusted = data_dir / "trusted-keys" / "hub.pub"
    if not trusted.exists():
        trusted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(key.with_suffix(".pub"), trusted)
    return key


def champion(engine: Engine, model: str) -> tuple[ModelVersion, Deployment] | None:
    with Session(engine) as s:
        dep = s.scalars(select(Deployment).where(Deployment.model == model,
                                                 Deployment.status == "active")
                        .order_by(desc(Deployment.id)).limit(1)).first()
        if dep is None:
            return None
        mv = s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                  ModelVersion.version == dep.version)).one()
        s.expunge_all()
        return mv, dep


def short_of_data(snap: Snapshot | None, policy: dict[str, Any], classes: list[str]) -> str | None:
    """Why this snapshot is too small to train and judge on, or None."""
    if snap is None:
        return "fewer than 20 labelled samples"
    missing = []
    if snap.train_rows < int(policy["min_rows"]):
        missing.append(f"training has {snap.train_rows} rows of {policy['min_rows']}")
    need = int(policy["min_per_class"])
    for side, counts in (("training", snap.train_classes), ("holdout", snap.holdout_classes)):
        missing += [f"{side} has {counts.get(c, 0)} {c} of {need}" for c in classes
                    if counts.get(c, 0) < need]
    return "; ".join(missing) or None


def retrain(engine: Engine, data_dir: Path, model: str, trigger: str,
            seed: int | None) -> tuple[str, dict[str, Any], str | None]:
    """(status, detail, version) of one run."""
    with Session(engine) as s:
        row = s.get(ModelPolicy, model)
        policy = {**DEFAULT_POLICY, **{k: v for k, v in (row.policy if row else {}).items()
                                       if k in DEFAULT_POLICY}}
        since = float((row.state or {}).get("train_since") or 0) if row else 0.0
    found = champion(engine, model)
    if found is None:
        return "failed", {"error": f"{model} has no active deployment to challenge"}, None
    champ, dep = found
    manifest = champ.manifest
    inputs = [i["name"] for i in manifest["inputs"]]
    classes = list(manifest["output"].get("classes") or [])
    positive = manifest["output"].get("positive_class")
    if len(classes) < 2:
        return "failed", {"error": f"{model} {champ.version} is not a classifier: the hub retrains "
                                   "classifiers only"}, None
    costs = policy_costs(policy, classes, positive)
    holdout_after = trained_until(engine, manifest.get("lineage") or {})
    snap = snapshot(engine, data_dir, model, inputs, classes, since, int(policy["max_rows"]),
                    float(policy["holdout_share"]), holdout_after)
    short = short_of_data(snap, policy, classes)
    if short is not None or snap is None:
        return "insufficient_data", {"error": f"not enough labelled data since the trouble began: {short}",
                                     "train_classes": snap.train_classes if snap else {},
                                     "holdout_classes": snap.holdout_classes if snap else {}}, None
    seed = int(policy["seed"]) if seed is None else seed
    work = Path(tempfile.mkdtemp(prefix="retrain-"))
    try:
        model_file, trainer_name = train(policy, snap.path, work, seed, positive)
        version = next_version(engine, model, champ.version)
        out = work / f"{model}-{version}"
        budget = Budget(**(manifest.get("monitoring") or {}).get("budget", {}))
        lineage = {"parent_version": champ.version, "reason": f"retrained: {trigger}",
                   "trigger": trigger, "dataset_sha256": snap.sha256, "trainer": trainer_name,
                   "trainer_settings": trainer_settings(policy, seed, positive),
                   "code_version": f"factory-edge-agent {__version__}", "seed": seed}
        bundle = build_bundle(model_file, snap.path / "train.csv", "label", model, version, out,
                              inputs=inputs, holdout_csv=snap.path / "holdout.csv",
                              positive_class=positive, signing_key=hub_key(data_dir), lineage=lineage,
                              budget=budget, cost_missed_nok=costs.missed, cost_false_nok=costs.false)
        holdout = snap.path / "holdout.csv"
        local_bundle(engine, data_dir, champ.sha256)  # published by another hub machine, maybe
        champ_pred, truth = predictions_of_archive(data_dir, champ.sha256, holdout, inputs)
        chall_pred, _ = predictions_of_bundle(bundle.path, holdout, inputs, trusted_keys(data_dir))
        publish_it, reason, figures = compare(truth, champ_pred, chall_pred, costs, float(policy["margin"]),
                                              float(policy["min_class_recall"]),
                                              float(policy["significance"]))
        detail: dict[str, Any] = {
            "dataset_sha256": snap.sha256, "train_rows": snap.train_rows, "holdout_rows": snap.holdout_rows,
            "train_classes": snap.train_classes, "holdout_classes": snap.holdout_classes,
            "champion": champ.version, "decision": reason,
            "champion_scores": figures["champion"], "challenger_scores": figures["challenger"],
            "paired": figures["paired"], "margin": figures["margin"],
            "min_class_recall": figures["min_class_recall"],
            "champion_accuracy": figures["champion"]["accuracy"],
            "challenger_accuracy": figures["challenger"]["accuracy"],
            "trainer": trainer_name, "lineage": lineage}
        if not publish_it:
            return "not_better", detail, None
        publish(engine, data_dir, out, trusted_keys(data_dir))
        if policy["require_approval"]:
            return "awaiting_approval", {**detail, "target": dep.target}, version
        detail["deployment"] = deploy_version(engine, model, version, dep.target, policy, "retrained")
        return "deployed", detail, version
    finally:
        shutil.rmtree(work, ignore_errors=True)


def trainer_settings(policy: dict[str, Any], seed: int, positive: str | None = None) -> dict[str, Any]:
    spec = policy["trainer"]
    return {"kind": spec if isinstance(spec, str) else "custom", "seed": seed,
            "positive_class": positive, "cost_missed_nok": float(policy["cost_missed_nok"]),
            "cost_false_nok": float(policy["cost_false_nok"])}


def train(policy: dict[str, Any], dataset: Path, work: Path, seed: int,
          positive: str | None = None) -> tuple[Path, str]:
    """Run the trainer command on a copy of the dataset; check what it wrote is a usable model."""
    run_dir = work / "dataset"
    shutil.copytree(dataset, run_dir)
    (run_dir / "trainer.json").write_text(json.dumps(trainer_settings(policy, seed, positive)))
    spec = policy["trainer"]
    if isinstance(spec, dict) and spec.get("command"):
        command, name = [str(c) for c in spec["command"]], f"custom: {' '.join(map(str, spec['command']))}"
    else:
        command, name = [sys.executable, "-m", "hub.trainer"], default_trainer.VERSION + f" ({spec})"
    out = work / "model.onnx"
    try:
        done = subprocess.run([*command, str(run_dir), str(out)], capture_output=True, text=True,
                              timeout=float(policy["timeout_s"]))
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentError(f"trainer {name} did not run: {exc}") from None
    if done.returncode != 0:
        raise AgentError(f"trainer {name} exited {done.returncode}: {done.stderr.strip()[-500:]}")
    if not out.is_file():
        raise AgentError(f"trainer {name} wrote no model file")
    meta = json.loads((dataset / "meta.json").read_text())
    load_runtime(OnnxRuntimeConfig(type="onnx"), out, len(meta["inputs"]))  # garbage fails here
    return out, name


def next_version(engine: Engine, model: str, parent: str) -> str:
    with Session(engine) as s:
        taken = set(s.scalars(select(ModelVersion.version).where(ModelVersion.name == model)))
    parts = parent.split(".")
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        major, minor = int(parts[0]), int(parts[1])
        while f"{major}.{minor + 1}.0" in taken:
            minor += 1
        return f"{major}.{minor + 1}.0"
    n = 1
    while f"{parent}-r{n}" in taken:
        n += 1
    return f"{parent}-r{n}"


def deploy_version(engine: Engine, model: str, version: str, target: str, policy: dict[str, Any],
                   reason: str) -> int:
    rollout = RolloutPolicy(int(policy["canary_size"]), float(policy["watch_s"]),
                            int(policy["min_labels"]), float(policy["margin"]))
    return deploy(engine, model, version, target, str(policy["strategy"]), rollout, reason=reason)
