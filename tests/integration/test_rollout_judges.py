"""The hub's canary and shadow judges on the paired counts gateways report, by the same cost rule
as champion/challenger (the model's policy costs, the paired test, the recall floor), over the
hub's real storage: fast, no agent (test_lifecycle runs the same judges against real agents)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.registry import publish
from hub.retrain import set_policy
from hub.rollouts import RolloutPolicy, deploy, evaluate, store_report
from hub.storage import Deployment, ModelVersion, add_gateway

MODEL = "moulding-nok"
NOK, OK = 0, 1


def counts(truth: np.ndarray, active: np.ndarray, candidate: np.ndarray) -> list[Any]:
    tensor = np.zeros((2, 2, 2), dtype=np.int64)
    np.add.at(tensor, (truth, active, candidate), 1)
    return tensor.tolist()


def parts(n: int = 300, seed: int = 1) -> np.ndarray:
    return np.where(np.random.default_rng(seed).random(n) < 0.15, NOK, OK)


def sha_of(engine: Engine, version: str) -> str:
    with Session(engine) as s:
        return str(s.scalars(select(ModelVersion.sha256).where(ModelVersion.version == version)).one())


def status_of(engine: Engine, version: str) -> tuple[str, str]:
    with Session(engine) as s:
        d = s.scalars(select(Deployment).where(Deployment.version == version)
                      .order_by(Deployment.id.desc())).first()
        assert d is not None
        return d.status, d.reason or ""


def comparison(tensor: list[Any]) -> dict[str, Any]:
    n = int(np.asarray(tensor).sum())
    return {"kind": "classifier", "labelled": n, "active_errors": 0, "candidate_errors": 0,
            "classes": ["NOK", "OK"], "paired_counts": tensor}


def test_canary_and_shadow_are_judged_on_cost(hub_db: Engine, tmp_path: Path, trained: dict[str, Path],
                                              versions: dict[str, Path]) -> None:
    add_gateway(hub_db, "gw-1", group="press")
    for bundle in (trained["bundle"], versions["1.1.0"], versions["7.1.0"]):
        publish(hub_db, tmp_path, bundle, [trained["pub"]])
    deploy(hub_db, MODEL, "1.0.0", "group:press", "immediate")
    set_policy(hub_db, MODEL, {"cost_missed_nok": 10, "cost_false_nok": 1})
    truth = parts()
    catches = np.where((truth == OK) & (np.random.default_rng(2).random(len(truth)) < 0.1), NOK, truth)
    misses = truth.copy()
    misses[np.flatnonzero(truth == NOK)[::2]] = OK  # right more often, half the NOK parts missed
    assert np.mean(misses == truth) > np.mean(catches == truth)

    # a canary whose watch already shows it missing NOK parts is stopped, whatever the gateway says
    canary = RolloutPolicy(canary_size=1, watch_s=600, margin=0.02)
    deploy(hub_db, MODEL, "1.1.0", "group:press", "canary", canary)
    sha = sha_of(hub_db, "1.1.0")
    report = {"active": {"name": MODEL, "version": "1.1.0", "sha256": sha, "since": time.time()},
              "watch": {"sha256": sha, "comparison": comparison(counts(truth, catches, misses))}}
    store_report(hub_db, "gw-1", report)
    assert evaluate(hub_db)
    status, reason = status_of(hub_db, "1.1.0")
    assert status == "rolled_back" and "canary gw-1 watch: worse: expected cost" in reason, reason

    # a shadow no worse on cost is promoted; one that misses NOK parts is rejected
    sha = sha_of(hub_db, "7.1.0")
    always_ok = np.full(len(truth), OK)
    for candidate, verdict in ((catches, "active"), (misses, "rejected"), (always_ok, "rejected")):
        deploy(hub_db, MODEL, "7.1.0", "group:press", "shadow", RolloutPolicy(min_labels=100, watch_s=600))
        shadow = {"sha256": sha, "comparison": comparison(counts(truth, catches, candidate))}
        store_report(hub_db, "gw-1", {"active": {"name": MODEL, "version": "1.0.0", "sha256": "x"},
                                      "shadow": shadow})
        evaluate(hub_db)
        status, reason = status_of(hub_db, "7.1.0")
        assert status == verdict, reason
        said = "shadow not worse: expected cost" if verdict == "active" else "shadow worse: expected cost"
        assert said in reason
