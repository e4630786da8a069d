"""Retraining at the hub, over its real API and storage: labelled samples arrive as telemetry,
a sustained accuracy drop triggers a retrain, the challenger is built, signed, compared with the
champion on the newest holdout and rolled out; a challenger that is not better is not published;
the approval gate holds; custom, crashing and garbage trainers; reproduce; the audit trail."""

from __future__ import annotations

import gzip
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.process import PROCESS_TAGS, DriftStep, LineProcess
from agent.store.codec import encode_json
from hub.cli import main as hub_main
from hub.registry import publish, trusted_keys
from hub.reproduce import reproduce
from hub.retrain import approve, evaluate_triggers, run_retrain, set_policy
from hub.rollouts import deploy
from hub.server import HubServer
from hub.storage import Deployment, ModelVersion, RetrainRun, TrainingSample, add_gateway

MODEL = "moulding-nok"


def samples_after_concept_change(n: int, seed: int = 11) -> list[dict[str, Any]]:
    proc = LineProcess(seed=seed, drift=[DriftStep("concept", 0.0)])
    now = time.time() - n * 30
    out = []
    for i in range(n):
        values, ok = proc.part(i * 30.0)
        out.append({"id": f"p{i}", "ts": now + i * 30, "model": MODEL, "inputs": PROCESS_TAGS,
                    "x": [values[t] for t in PROCESS_TAGS], "predicted": "OK",
                    "label": "OK" if ok else "NOK", "version": "1.0.0", "bundle_sha256": "x",
                    "hard": not ok})
    return out


def upload(hub: HubServer, token: str, gateway: str, samples: list[dict[str, Any]], first_seq: int) -> None:
    records = [{"seq": first_seq + i, "kind": "training_samples", "items": len(chunk), "created": time.time(),
                "payload_hex": encode_json(chunk).hex()}
               for i, chunk in enumerate(samples[k:k + 200] for k in range(0, len(samples), 200))]
    body = {"gateway_id": gateway, "first_seq": first_seq, "last_seq": first_seq + len(records) - 1,
            "records": records}
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
        r = c.post(f"/api/v1/gateways/{gateway}/telemetry", content=gzip.compress(json.dumps(body).encode()),
                   headers={"Content-Encoding": "gzip"})
        assert r.status_code == 200, r.text
        again = c.post(f"/api/v1/gateways/{gateway}/telemetry",
                       content=gzip.compress(json.dumps(body).encode()), headers={"Content-Encoding": "gzip"})
        assert again.json()["stored"] == 0  # a re-sent batch adds no sample twice
        status = {"active": {"name": MODEL, "version": "1.0.0", "sha256": "x", "since": 1.0},
                  "metrics": {"monitor": {"rolling_accuracy": 0.55}}, "alarms": []}
        assert c.post(f"/api/v1/gateways/{gateway}/status", content=json.dumps(status)).status_code == 200


def runs(engine: Engine) -> list[RetrainRun]:
    with Session(engine) as s:
        q = select(RetrainRun).where(RetrainRun.status != "skipped").order_by(RetrainRun.id)
        out = list(s.scalars(q))
        s.expunge_all()
        return out


def versions(engine: Engine) -> list[str]:
    with Session(engine) as s:
        return list(s.scalars(select(ModelVersion.version).where(ModelVersion.name == MODEL)))


@pytest.fixture()
def hub_any(engine: Engine, tmp_path: Path) -> Iterator[HubServer]:
    """The hub on SQLite and on PostgreSQL (the engine fixture's two databases)."""
    server = HubServer(engine, tmp_path / "hub-data")
    server.start()
    yield server
    server.stop()


def test_retrain_loop_at_the_hub(hub_any: HubServer, engine: Engine, trained: dict[str, Path],
                                 tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hub, hub_db = hub_any, engine
    token = add_gateway(hub_db, "gw-a", group="press")
    (hub.data / "trusted-keys").mkdir(parents=True, exist_ok=True)
    shutil.copy(trained["pub"], hub.data / "trusted-keys" / "release.pub")  # the plant's release key
    publish(hub_db, hub.data, trained["bundle"], trusted_keys(hub.data))
    deploy(hub_db, MODEL, "1.0.0", "group:press", "immediate")
    upload(hub, token, "gw-a", samples_after_concept_change(700), 1)
    with Session(hub_db) as s:
        assert s.query(TrainingSample).count() == 700
    set_policy(hub_db, MODEL, {"accuracy_below": 0.8, "sustain_s": 0, "min_interval_s": 3600,
                               "lookback_s": 86400, "strategy": "canary", "watch_s": 1, "margin": 0.02,
                               "min_rows": 100})

    # the trigger holds (accuracy 0.55 < 0.8): a run, a better challenger, a canary rollout
    assert evaluate_triggers(hub_db, hub.data, background=False)
    first = runs(hub_db)[-1]
    assert first.status == "deployed", first.detail
    assert first.detail["challenger_accuracy"] > first.detail["champion_accuracy"] + 0.02
    assert first.version == "1.1.0" and "accuracy 0.550 below 0.8" in first.trigger
    with Session(hub_db) as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.version == "1.1.0")).one()
        lineage = mv.manifest["lineage"]
        dep = s.scalars(select(Deployment).where(Deployment.version == "1.1.0")).one()
    assert lineage["parent_version"] == "1.0.0"
    assert lineage["dataset_sha256"] == first.detail["dataset_sha256"]
    assert lineage["trainer"].startswith("sklearn-default") and lineage["code_version"]
    assert dep.strategy == "canary" and (hub.data / "datasets" / lineage["dataset_sha256"]).is_dir()

    # rate limited: the same trigger does not start another run within min_interval_s
    assert evaluate_triggers(hub_db, hub.data, background=False) == []
    common = ["--db", hub_db.url.render_as_string(hide_password=False), "--data", str(hub.data)]
    assert hub_main([*common, "retrain", "status", MODEL]) == 0
    assert "rate limited" in capsys.readouterr().out

    # reproduce: the stored snapshot, the recorded trainer and seed give the same predictions
    result = reproduce(hub_db, hub.data, MODEL, "1.1.0")
    assert result["match"] and result["rows"] > 100

    # a challenger that is not better by the margin is not published
    set_policy(hub_db, MODEL, {"margin": 0.9})
    assert run_retrain(hub_db, hub.data, MODEL, "test: not better").status == "not_better"
    assert versions(hub_db) == ["1.0.0", "1.1.0"]

    # the approval gate holds a candidate until someone approves it
    set_policy(hub_db, MODEL, {"margin": 0.0, "require_approval": True, "strategy": "shadow"})
    held = run_retrain(hub_db, hub.data, MODEL, "test: gate", seed=1)
    assert held.status == "awaiting_approval" and held.version is not None
    with Session(hub_db) as s:
        assert s.scalars(select(Deployment).where(Deployment.version == held.version)).first() is None
    approve(hub_db, MODEL, held.version, "qa-lead", "reviewed the model card")
    with Session(hub_db) as s:
        gated = s.scalars(select(Deployment).where(Deployment.version == held.version)).one()
        assert gated.strategy == "shadow"

    # trainers: a custom command is used; a crash or garbage fails the run and deploys nothing
    script = tmp_path / "train.py"
    marker = tmp_path / "custom-ran"
    script.write_text(
        "import json, sys, csv, numpy as np\n"
        "from agent.models.training import train_onnx\n"
        "d, out = sys.argv[1], sys.argv[2]\n"
        "meta = json.load(open(d + '/meta.json'))\n"
        "rows = list(csv.DictReader(open(d + '/train.csv')))\n"
        "x = np.array([[float(r[c]) for c in meta['inputs']] for r in rows], dtype=np.float32)\n"
        "train_onnx(x, np.array([r['label'] for r in rows]), __import__('pathlib').Path(out), kind='rf')\n"
        f"open({str(marker)!r}, 'w').write('yes')\n")
    set_policy(hub_db, MODEL, {"require_approval": False,
                               "trainer": {"command": [sys.executable, str(script)]}})
    custom = run_retrain(hub_db, hub.data, MODEL, "test: custom trainer")
    assert marker.exists() and custom.detail["trainer"].startswith("custom: ")
    deployments_before = _count(hub_db, Deployment)
    for command, error in ((["-c", "import sys; sys.exit(3)"], "exited 3"),
                           (["-c", "import sys; open(sys.argv[2], 'w').write('garbage')"], "cannot load")):
        set_policy(hub_db, MODEL, {"trainer": {"command": [sys.executable, *command]}})
        failed = run_retrain(hub_db, hub.data, MODEL, "test: broken trainer")
        assert failed.status == "failed" and error in failed.detail["error"], failed.detail
    assert _count(hub_db, Deployment) == deployments_before  # the fleet never saw a broken run

    # the hub's audit trail: intact, then an edited entry is named
    assert hub_main([*common, "audit", "verify"]) == 0
    with hub_db.begin() as conn:
        conn.execute(text("UPDATE history SET detail = 'nothing happened' WHERE event = 'approved'"))
    assert hub_main([*common, "audit", "verify"]) == 2
    assert "was edited" in capsys.readouterr().err


def _count(engine: Engine, table: Any) -> int:
    with Session(engine) as s:
        return s.query(table).count()


def test_drift_trigger_needs_new_labels(hub: HubServer, hub_db: Engine, trained: dict[str, Path]) -> None:
    """A drift alarm alone is not enough: it must hold, with enough new labelled samples."""
    token = add_gateway(hub_db, "gw-d")
    publish(hub_db, hub.data, trained["bundle"], [trained["pub"]])
    deploy(hub_db, MODEL, "1.0.0", "gw-d", "immediate")
    upload(hub, token, "gw-d", samples_after_concept_change(120), 1)
    alarm = {"active": {"name": MODEL, "version": "1.0.0", "sha256": "x", "since": 1.0},
             "metrics": {"monitor": {"rolling_accuracy": 0.95}},
             "alarms": [{"kind": "data_drift", "detector": "psi", "feature": "cushion", "level": "alarm"}]}
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post("/api/v1/gateways/gw-d/status", content=json.dumps(alarm)).status_code == 200
    set_policy(hub_db, MODEL, {"accuracy_below": 0.5, "drift_sustain_s": 0, "min_new_labels": 1000,
                               "lookback_s": 86400, "min_rows": 50})
    assert evaluate_triggers(hub_db, hub.data, background=False) == []
    with Session(hub_db) as s:
        skipped = s.scalars(select(RetrainRun.trigger).where(RetrainRun.status == "skipped")).all()
    assert any("only 120 new labelled samples (need 1000)" in t for t in skipped)
    set_policy(hub_db, MODEL, {"min_new_labels": 100})
    started = evaluate_triggers(hub_db, hub.data, background=False)
    assert started and "drift alarm held" in started[0]
