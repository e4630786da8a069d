"""Retraining at the hub, over its real API and storage: labelled samples arrive as telemetry,
a sustained drop of balanced accuracy triggers a retrain, the challenger is built, signed,
compared with the champion on the newest holdout by expected cost with a paired test and rolled
out; a challenger that is not cheaper is not published, nor an always-OK one with higher
accuracy; a retrain waits while a class has too few examples; the approval gate holds; custom,
crashing and garbage trainers; reproduce; model cards; the audit trail."""

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


def samples_after_concept_change(n: int, seed: int = 11, ago: float = 0.0) -> list[dict[str, Any]]:
    """n labelled parts of the changed relation, one every 30 s, the last ``ago`` seconds ago."""
    proc = LineProcess(seed=seed, drift=[DriftStep("concept", 0.0)])
    now = time.time() - ago - n * 30
    out = []
    for i in range(n):
        values, ok = proc.part(i * 30.0)
        out.append({"id": f"p{i}", "ts": now + i * 30, "model": MODEL, "inputs": PROCESS_TAGS,
                    "x": [values[t] for t in PROCESS_TAGS], "predicted": "OK",
                    "label": "OK" if ok else "NOK", "version": "1.0.0", "bundle_sha256": "x",
                    "hard": not ok})
    return out


SLIPPING = {"rolling_accuracy": 0.80, "rolling_balanced_accuracy": 0.5, "rolling_cost_per_part": 1.5,
            "rolling_per_class": {"NOK": {"support": 30, "recall": 0.0, "precision": None},
                                  "OK": {"support": 170, "recall": 1.0, "precision": 0.85}}}


def status(hub: HubServer, token: str, gateway: str, monitor: dict[str, Any], version: str = "1.0.0") -> None:
    body = {"active": {"name": MODEL, "version": version, "sha256": "x", "since": 1.0},
            "metrics": {"monitor": monitor}, "alarms": []}
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post(f"/api/v1/gateways/{gateway}/status", content=json.dumps(body)).status_code == 200


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
    status(hub, token, gateway, SLIPPING)


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
    set_policy(hub_db, MODEL, {"balanced_accuracy_below": 0.8, "sustain_s": 0, "min_interval_s": 3600,
                               "lookback_s": 86400, "strategy": "canary", "watch_s": 1, "margin": 0.02,
                               "min_rows": 100})

    # the trigger holds (balanced accuracy 0.5 < 0.8, while accuracy looks fine at 0.80): a run,
    # a cheaper challenger, a canary rollout
    assert evaluate_triggers(hub_db, hub.data, background=False)
    first = runs(hub_db)[-1]
    assert first.status == "deployed", first.detail
    paired = first.detail["paired"]
    assert paired["second_cost_per_part"] < paired["first_cost_per_part"] - 0.02 and paired["p_lower"] <= 0.05
    assert "paired percentile bootstrap" in paired["test"]
    assert first.detail["decision"].startswith("published")
    challenger = first.detail["challenger_scores"]
    assert challenger["per_class"]["NOK"]["recall"] >= 0.6 and challenger["per_class"]["NOK"]["support"] >= 20
    assert first.detail["holdout_classes"]["NOK"] >= 20 and first.detail["train_classes"]["NOK"] >= 20
    assert first.version == "1.1.0" and "balanced accuracy 0.500 below 0.8" in first.trigger
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

    # a challenger that is not cheaper by the margin is not published
    set_policy(hub_db, MODEL, {"margin": 5.0})
    refused = run_retrain(hub_db, hub.data, MODEL, "test: not better")
    assert refused.status == "not_better" and "not cheaper by the margin 5" in refused.detail["decision"]
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
    upload(hub, token, "gw-d", samples_after_concept_change(300), 1)
    alarm = {"active": {"name": MODEL, "version": "1.0.0", "sha256": "x", "since": 1.0},
             "metrics": {"monitor": {"rolling_accuracy": 0.95}},
             "alarms": [{"kind": "data_drift", "detector": "psi", "feature": "cushion", "level": "alarm"}]}
    with httpx.Client(base_url=hub.url, headers={"Authorization": f"Bearer {token}"}) as c:
        assert c.post("/api/v1/gateways/gw-d/status", content=json.dumps(alarm)).status_code == 200
    set_policy(hub_db, MODEL, {"balanced_accuracy_below": 0.5, "drift_sustain_s": 0, "min_new_labels": 1000,
                               "lookback_s": 86400, "min_rows": 50, "min_per_class": 10,
                               "holdout_share": 0.4})
    assert evaluate_triggers(hub_db, hub.data, background=False) == []
    with Session(hub_db) as s:
        skipped = s.scalars(select(RetrainRun.trigger).where(RetrainRun.status == "skipped")).all()
    assert any("only 300 new labelled samples (need 1000)" in t for t in skipped)
    set_policy(hub_db, MODEL, {"min_new_labels": 100})
    started = evaluate_triggers(hub_db, hub.data, background=False)
    assert started and "drift alarm held" in started[0]


def trust_release_key(hub: HubServer, trained: dict[str, Path]) -> None:
    """The plant's release key, trusted by the hub for the champion it compares against."""
    (hub.data / "trusted-keys").mkdir(parents=True, exist_ok=True)
    shutil.copy(trained["pub"], hub.data / "trusted-keys" / "release.pub")


ALWAYS_OK_TRAINER = (
    "import sys, numpy as np, onnx\n"
    "from onnx import TensorProto, helper\n"
    "w = helper.make_tensor('w', TensorProto.FLOAT, [8, 2], [0.0] * 16)\n"
    "b = helper.make_tensor('b', TensorProto.FLOAT, [2], [0.0, 1.0])  # classes NOK, OK\n"
    "g = helper.make_graph([helper.make_node('MatMul', ['input', 'w'], ['m']),\n"
    "                       helper.make_node('Add', ['m', 'b'], ['probabilities'])], 'always_ok',\n"
    "    [helper.make_tensor_value_info('input', TensorProto.FLOAT, [None, 8])],\n"
    "    [helper.make_tensor_value_info('probabilities', TensorProto.FLOAT, [None, 2])], [w, b])\n"
    "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)])\n"
    "m.ir_version = 8\n"
    "open(sys.argv[2], 'wb').write(m.SerializeToString())\n")


def test_always_ok_challenger_with_higher_accuracy_is_rejected(
        hub: HubServer, hub_db: Engine, trained: dict[str, Path], tmp_path: Path) -> None:
    """On an imbalanced holdout a model that always says OK is more accurate than the champion
    after the relation changed; it misses every NOK part, so the hub refuses it and says why."""
    token = add_gateway(hub_db, "gw-o")
    trust_release_key(hub, trained)
    publish(hub_db, hub.data, trained["bundle"], [trained["pub"]])
    deploy(hub_db, MODEL, "1.0.0", "gw-o", "immediate")
    upload(hub, token, "gw-o", samples_after_concept_change(600), 1)
    script = tmp_path / "always_ok.py"
    script.write_text(ALWAYS_OK_TRAINER)
    set_policy(hub_db, MODEL, {"lookback_s": 86400, "trainer": {"command": [sys.executable, str(script)]}})
    run = run_retrain(hub_db, hub.data, MODEL, "test: always OK")
    assert run.status == "not_better", run.detail
    assert run.detail["challenger_accuracy"] > run.detail["champion_accuracy"]  # accuracy would say yes
    assert "NOK recall 0.00 below the floor 0.5" in run.detail["decision"]
    assert run.detail["challenger_scores"]["balanced_accuracy"] == 0.5
    assert versions(hub_db) == ["1.0.0"]


def test_retrain_waits_for_enough_examples_of_every_class(
        hub: HubServer, hub_db: Engine, trained: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    token = add_gateway(hub_db, "gw-w")
    trust_release_key(hub, trained)
    publish(hub_db, hub.data, trained["bundle"], [trained["pub"]])
    deploy(hub_db, MODEL, "1.0.0", "gw-w", "immediate")
    samples = samples_after_concept_change(400, ago=400 * 30)
    noks = [x for x in samples if x["label"] == "NOK"]
    few = [x for x in samples if x["label"] == "OK" or x in noks[:30]]  # 30 NOK, mostly early
    upload(hub, token, "gw-w", few, 1)
    set_policy(hub_db, MODEL, {"sustain_s": 0, "lookback_s": 86400})
    assert evaluate_triggers(hub_db, hub.data, background=False) == []
    common = ["--db", str(hub_db.url), "--data", str(hub.data)]
    assert hub_main([*common, "retrain", "status", MODEL]) == 0
    out = capsys.readouterr().out
    assert "balanced accuracy 0.500 below 0.8" in out and "waiting for labelled samples" in out
    assert "holdout has 0 NOK of 20" in out, out
    # a manual retrain does not train on it either, and says the same
    run = run_retrain(hub_db, hub.data, MODEL, "test: too few NOK")
    assert run.status == "insufficient_data" and "holdout has 0 NOK of 20" in run.detail["error"]
    # more parts of the new behaviour arrive: the retrain goes ahead
    upload(hub, token, "gw-w", samples_after_concept_change(400, seed=12), 100)
    assert evaluate_triggers(hub_db, hub.data, background=False)
    assert runs(hub_db)[-1].status == "deployed"


def test_bad_policy_values_exit_2_naming_the_setting(hub_db: Engine, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--db", str(hub_db.url), "--data", str(tmp_path / "data")]
    for setting, message in (("cost_missed_nok=-5", "cost_missed_nok=-5: a cost cannot be negative"),
                             ("min_class_recall=1.5", "min_class_recall=1.5: use a number between 0 and 1"),
                             ("min_per_class=0", "min_per_class=0: use a whole number >= 1"),
                             ("accuracy_below=0.8", "accuracy_below: replaced by balanced_accuracy_below")):
        assert hub_main([*common, "policy", "set", MODEL, setting]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err, err
    assert hub_main([*common, "policy", "set", MODEL, "cost_missed_nok=25", "min_class_recall=0.7"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["cost_missed_nok"] == 25 and shown["min_class_recall"] == 0.7
    assert shown["min_per_class"] == 20
