"""Several models on one gateway, at the hub over loopback HTTP on SQLite and PostgreSQL: the
desired state has an entry per model, a rollout of one model never touches another's version,
reports are judged per (gateway, model), the fleet table and the CLI show one row per (gateway,
model), retrain triggers and model cards count only their own model's entries; a one-model
agent's report and desired state (no ``models``) keep working."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.cli import main as hub_main
from hub.modelcard import card_data
from hub.registry import publish
from hub.retrain import evaluate_triggers, get_policy, set_policy
from hub.rollouts import RolloutPolicy, desired_state, evaluate, store_report
from hub.rollouts import deploy as deploy_now
from hub.server import HubServer
from hub.storage import (
    Deployment,
    GatewayMetric,
    GatewayStatus,
    ModelVersion,
    add_admin_token,
    add_gateway,
    list_gateways,
)
from tests.helpers.multimodel import renamed

QUALITY, CYCLE = "quality", "cycle-time"


@pytest.fixture(scope="module")
def bundles(trained: dict[str, Path],
            tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    root = tmp_path_factory.mktemp("models")
    return {(name, version): renamed(trained["bundle"], name, version, root / f"{name}-{version}",
                                     trained["key"])
            for name, version in ((QUALITY, "1.0.0"), (QUALITY, "2.0.0"), (CYCLE, "1.0.0"), (CYCLE, "2.0.0"))}


@pytest.fixture()
def hub(engine: Engine, tmp_path: Path, trained: dict[str, Path],
        bundles: dict[tuple[str, str], Path]) -> Iterator[HubServer]:
    for bundle in bundles.values():
        publish(engine, tmp_path / "hub-data", bundle, [trained["pub"]])
    server = HubServer(engine, tmp_path / "hub-data", evaluate_interval_s=0.2)
    server.start()
    yield server
    server.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def until(condition: Callable[[], Any], what: str, within: float = 20.0) -> Any:
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within} s waiting for {what}")
        time.sleep(0.05)
    return value


def sha(c: httpx.Client, admin: str, name: str, version: str) -> str:
    rows = c.get("/api/v1/models", headers=auth(admin)).json()
    return next(r["sha256"] for r in rows if r["name"] == name and r["version"] == version)


def deploy(c: httpx.Client, admin: str, model: str, version: str, to: str, strategy: str = "immediate",
           **policy: Any) -> int:
    r = c.post("/api/v1/deployments", headers=auth(admin),
               json={"model": model, "version": version, "to": to, "strategy": strategy, **policy})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


def statuses(engine: Engine) -> dict[tuple[str, str], str]:
    with Session(engine) as s:
        return {(d.model, d.version): d.status for d in s.scalars(select(Deployment).order_by(Deployment.id))}


def versions_of(doc: dict[str, Any]) -> dict[str, str]:
    return {n: e["model"]["version"] for n, e in doc["models"].items()}


def entry(name: str, version: str | None, sha256: str | None, since: float | None = None,
          **more: Any) -> dict[str, Any]:
    """A model's entry of a report; active since an hour ago unless ``since`` says otherwise."""
    since = time.time() - 3600 if since is None else since
    active = {"name": name, "version": version, "sha256": sha256, "since": since} if version else None
    return {"name": name, "active": active, "health": "ok", **more}


def test_two_models_on_one_gateway(hub: HubServer, engine: Engine,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Both models in the desired state; a canary of one leaves the other's entry as it was; a
    failing report of one rolls back that model only; an old-style report picks the top level."""
    token = add_gateway(engine, "gw-1", group="press")
    token_2 = add_gateway(engine, "gw-2", group="press")
    admin = add_admin_token(engine, "alice")
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        def desired() -> dict[str, Any]:
            r = c.get("/api/v1/gateways/gw-1/desired", headers=auth(token))
            assert r.status_code == 200, r.text
            return dict(r.json())

        def report(body: dict[str, Any]) -> None:
            r = c.post("/api/v1/gateways/gw-1/status", headers=auth(token), json=body)
            assert r.status_code == 200, r.text

        deploy(c, admin, QUALITY, "1.0.0", "gw-1")
        deploy(c, admin, CYCLE, "1.0.0", "group:press")
        doc = desired()
        assert versions_of(doc) == {QUALITY: "1.0.0", CYCLE: "1.0.0"}
        assert all(e["deployment"]["status"] == "active" for e in doc["models"].values())
        # the gateway named no model yet: the top level is the model deployed last
        assert doc["model"]["name"] == CYCLE and doc["deployment"] == doc["models"][CYCLE]["deployment"]

        # a one-model agent's report (no models key) naming quality: the top level follows it
        sha_q1 = sha(c, admin, QUALITY, "1.0.0")
        report({"active": {"name": QUALITY, "version": "1.0.0", "sha256": sha_q1, "since": time.time()},
                "health": "ok", "outbox_depth": 3})
        doc = until(lambda: (d := desired())["model"]["name"] == QUALITY and d, "the top level to follow")
        assert doc["model"]["version"] == "1.0.0" and set(doc["models"]) == {QUALITY, CYCLE}
        cycle_before = doc["models"][CYCLE]

        # a canary of quality (gw-1 its canary): cycle-time's entry and deployment untouched
        deploy(c, admin, QUALITY, "2.0.0", "group:press", "canary", canary_size=1, watch_s=3600)
        doc = desired()
        assert doc["models"][QUALITY]["model"]["version"] == "2.0.0"
        assert doc["models"][QUALITY]["deployment"]["status"] == "canary"
        assert doc["models"][CYCLE] == cycle_before
        assert statuses(engine)[(CYCLE, "1.0.0")] == "active"
        # and a canary of cycle-time beside it does not supersede quality's
        deploy(c, admin, CYCLE, "2.0.0", "group:press", "canary", canary_size=1, watch_s=3600)
        assert statuses(engine)[(QUALITY, "2.0.0")] == "canary"
        etag = c.get("/api/v1/gateways/gw-1/desired", headers=auth(token)).headers["ETag"]
        assert c.get("/api/v1/gateways/gw-1/desired",
                     headers={**auth(token), "If-None-Match": etag}).status_code == 304

        # the agent of several models reports: quality rolled 2.0.0 back, cycle-time runs 2.0.0 fine
        sha_q2, sha_c2 = sha(c, admin, QUALITY, "2.0.0"), sha(c, admin, CYCLE, "2.0.0")
        rejected = {"name": QUALITY, "version": "2.0.0", "sha256": sha_q2, "reason": "watch: worse",
                    "at": time.time()}
        report({"active": entry(QUALITY, "1.0.0", sha_q1)["active"], "rejected": [rejected],
                "health": "warning",
                "models": [entry(QUALITY, "1.0.0", sha_q1, rejected=[rejected], health="warning"),
                           entry(CYCLE, "2.0.0", sha_c2, since=time.time())]})
        until(lambda: statuses(engine)[(QUALITY, "2.0.0")] == "rolled_back", "quality's canary to roll back")
        assert statuses(engine)[(CYCLE, "2.0.0")] == "canary"  # judged on its own entry: clean
        doc = until(lambda: (d := desired())["models"][QUALITY]["model"]["version"] == "1.0.0" and d,
                    "quality back at 1.0.0")
        assert doc["models"][CYCLE]["model"]["version"] == "2.0.0"
        assert c.get("/api/v1/gateways/gw-2/desired", headers=auth(token_2)).json()[
            "models"][CYCLE]["model"]["version"] == "1.0.0"  # not a canary of cycle-time

        # the fleet table: one row per (gateway, model)
        rows = {g["id"]: g for g in c.get("/api/v1/gateways", headers=auth(admin)).json()}
        models = {m["name"]: m for m in rows["gw-1"]["models"]}
        assert (models[QUALITY]["version"], models[QUALITY]["health"], models[QUALITY]["rejected"]) == (
            "1.0.0", "warning", 1)
        assert (models[CYCLE]["version"], models[CYCLE]["sha256"]) == ("2.0.0", sha_c2)
        assert rows["gw-2"]["models"] == []

        # a later report without cycle-time: the gateway no longer runs it
        report({"active": entry(QUALITY, "1.0.0", sha_q1)["active"],
                "models": [entry(QUALITY, "1.0.0", sha_q1)]})
        rows = {g["id"]: g for g in c.get("/api/v1/gateways", headers=auth(admin)).json()}
        assert [m["name"] for m in rows["gw-1"]["models"]] == [QUALITY]
        report({"active": entry(QUALITY, "1.0.0", sha_q1)["active"],
                "models": [entry(QUALITY, "1.0.0", sha_q1),
                           entry(CYCLE, "2.0.0", sha_c2, since=time.time())]})

    db = engine.url.render_as_string(hide_password=False)
    assert hub_main(["fleet", "--db", db, "--data", str(hub.data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "MODEL" in lines[0] and "VERSION" in lines[0]
    mine = sorted(line for line in lines if line.startswith("gw-1 "))
    assert len(mine) == 2 and f" {CYCLE} " in mine[0] and " 2.0.0 " in mine[0], mine
    assert f" {QUALITY} " in mine[1] and " 1.0.0 " in mine[1] and " ok " in mine[1], mine
    assert len([line for line in lines if line.startswith("gw-2 ")]) == 1  # no model reported yet
    with Session(engine) as s:  # chart points per (gateway, model)
        points = {(m.model, m.version) for m in s.scalars(select(GatewayMetric).where(
            GatewayMetric.gateway_id == "gw-1"))}
    assert {(QUALITY, "1.0.0"), (CYCLE, "2.0.0")} <= points


def test_a_rollout_is_judged_on_its_own_models_entries(hub: HubServer, engine: Engine) -> None:
    """Two canaries on one gateway: the clean one is promoted, the rejected one rolled back; a
    rejection of one model (same version string) never stops the other's rollout."""
    token = add_gateway(engine, "gw-1")
    admin = add_admin_token(engine, "alice")
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        deploy(c, admin, QUALITY, "1.0.0", "gw-1")
        deploy(c, admin, CYCLE, "1.0.0", "gw-1")
        deploy(c, admin, QUALITY, "2.0.0", "gw-1", "canary", watch_s=1)
        deploy(c, admin, CYCLE, "2.0.0", "gw-1", "canary", watch_s=1)
        sha_q2, sha_c2 = sha(c, admin, QUALITY, "2.0.0"), sha(c, admin, CYCLE, "2.0.0")
        rejected = {"name": CYCLE, "version": "2.0.0", "sha256": sha_c2, "reason": "self-test failed"}
        body = {"models": [entry(QUALITY, "2.0.0", sha_q2), entry(CYCLE, "1.0.0", "x", rejected=[rejected])]}
        assert c.post("/api/v1/gateways/gw-1/status", headers=auth(token), json=body).status_code == 200
        until(lambda: statuses(engine)[(QUALITY, "2.0.0")] == "active", "quality's canary promoted")
        until(lambda: statuses(engine)[(CYCLE, "2.0.0")] == "rolled_back", "cycle-time's canary stopped")
        # the decision is committed first and reaches the desired-state cache after (on
        # PostgreSQL through a change notice, its listener's reload): within a second, not at once
        want = {QUALITY: "2.0.0", CYCLE: "1.0.0"}
        until(lambda: versions_of(c.get("/api/v1/gateways/gw-1/desired", headers=auth(token)).json()) == want,
              "the desired state back on cycle-time 1.0.0", within=5.0)
        doc = c.get("/api/v1/gateways/gw-1/desired", headers=auth(token)).json()
        assert versions_of(doc) == want


def test_one_model_agent_report_and_desired_unchanged(hub: HubServer, engine: Engine) -> None:
    """An agent of the current release: no models key either way; its report is one entry named
    by its active model, or by the model it is sent while it runs none."""
    token = add_gateway(engine, "old")
    admin = add_admin_token(engine, "alice")
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        deploy(c, admin, QUALITY, "1.0.0", "old")
        sha_q2 = sha(c, admin, QUALITY, "2.0.0")
        deploy(c, admin, QUALITY, "2.0.0", "old", "canary", watch_s=3600)
        doc = c.get("/api/v1/gateways/old/desired", headers=auth(token)).json()
        assert doc["model"]["version"] == "2.0.0" and doc["deployment"]["status"] == "canary"
        assert list(doc["models"]) == [QUALITY]
        # it refused 2.0.0 and runs nothing: the rejection counts for the model it is sent
        body = {"active": None, "rejected": [{"name": QUALITY, "version": "2.0.0", "sha256": sha_q2,
                                              "reason": "signature"}], "health": "alarm"}
        assert c.post("/api/v1/gateways/old/status", headers=auth(token), json=body).status_code == 200
        until(lambda: statuses(engine)[(QUALITY, "2.0.0")] == "rolled_back", "the canary stopped")
        doc = until(lambda: (d := c.get("/api/v1/gateways/old/desired", headers=auth(token)).json())[
            "model"]["version"] == "1.0.0" and d, "the gateway sent 1.0.0 again")
        assert doc["shadow"] is None
        row = c.get("/api/v1/gateways", headers=auth(admin)).json()[0]
        assert row["status"]["health"] == "alarm" and "models" not in row["status"]
        assert [(m["name"], m["health"], m["rejected"]) for m in row["models"]] == [(QUALITY, "alarm", 1)]


def monitor(balanced: float, version: str, confusion: list[list[int]]) -> dict[str, Any]:
    return {"rolling_balanced_accuracy": balanced, "rolling_labelled": 200,
            "rolling_per_class": {"NOK": {"support": 30, "recall": balanced},
                                  "OK": {"support": 170, "recall": 0.99}},
            "since_activation": {"version": version, "labelled": sum(map(sum, confusion)),
                                 "classes": ["NOK", "OK"], "confusion": confusion}}


def test_triggers_and_cards_count_their_own_model(hub: HubServer, engine: Engine) -> None:
    """Both models at version 1.0.0 on one gateway, one slipping: only its trigger holds, and each
    card counts only its own model's outcomes."""
    token = add_gateway(engine, "gw-1")
    for name in (QUALITY, CYCLE):
        set_policy(engine, name, {"sustain_s": 3600.0})
    q = entry(QUALITY, "1.0.0", "a", metrics={"monitor": monitor(0.95, "1.0.0", [[20, 0], [0, 30]])})
    cy = entry(CYCLE, "1.0.0", "b", metrics={"monitor": monitor(0.5, "1.0.0", [[1, 1], [1, 1]])})
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        r = c.post("/api/v1/gateways/gw-1/status", headers=auth(token),
                   json={"active": q["active"], "metrics": q["metrics"], "models": [q, cy]})
        assert r.status_code == 200, r.text
    assert evaluate_triggers(engine, hub.data, background=False) == []  # sustain_s not over yet
    assert get_policy(engine, QUALITY)["state"]["acc_since"] is None
    assert get_policy(engine, CYCLE)["state"]["acc_since"] is not None
    assert [g["labelled"] for g in card_data(engine, QUALITY, "1.0.0")["field"]["gateways"]] == [50]
    assert [g["labelled"] for g in card_data(engine, CYCLE, "1.0.0")["field"]["gateways"]] == [4]


def test_a_status_row_written_directly_is_read_as_a_one_model_report(
        engine: Engine, tmp_path: Path, trained: dict[str, Path],
        bundles: dict[tuple[str, str], Path]) -> None:
    """A gateway_status row newer than the gateway's entries (written by an older hub, or a tool
    writing the row itself as bench.fleet does) counts, not the stale entries."""
    add_gateway(engine, "gw-1", group="press")
    for bundle in bundles.values():
        publish(engine, tmp_path / "data", bundle, [trained["pub"]])
    deploy_now(engine, QUALITY, "1.0.0", "group:press", "immediate")
    deploy_now(engine, QUALITY, "2.0.0", "group:press", "canary", RolloutPolicy(watch_s=1))
    store_report(engine, "gw-1", {"models": [entry(QUALITY, "1.0.0", "x"), entry(CYCLE, "1.0.0", "y")]})
    assert evaluate(engine) == []  # the canary runs 1.0.0: nothing to decide
    with Session(engine) as s, s.begin():
        sha = s.scalars(select(ModelVersion.sha256).where(ModelVersion.name == QUALITY,
                                                          ModelVersion.version == "2.0.0")).one()
        row = s.get(GatewayStatus, "gw-1")
        assert row is not None
        row.report = {"active": {"name": QUALITY, "version": "2.0.0", "sha256": sha, "since": 1.0}}
        row.updated = time.time() + 1
    decided = evaluate(engine)
    assert len(decided) == 1 and "promoted" in decided[0], decided
    models = [m["name"] for m in list_gateways(engine)[0]["models"]]
    assert models == [QUALITY]  # the row written last says what the gateway runs


def test_a_rejection_of_a_one_model_agent_counts_for_the_model_it_is_sent(
        engine: Engine, tmp_path: Path, trained: dict[str, Path],
        bundles: dict[tuple[str, str], Path]) -> None:
    """It once ran quality (a local bundle, never deployed to it); the hub sends it a canary of
    cycle-time, which it refuses and runs nothing: the rejection stops cycle-time's canary."""
    add_gateway(engine, "gw-1")
    for bundle in bundles.values():
        publish(engine, tmp_path / "data", bundle, [trained["pub"]])
    deploy_now(engine, CYCLE, "2.0.0", "gw-1", "canary", RolloutPolicy(watch_s=3600))
    store_report(engine, "gw-1", {"active": entry(QUALITY, "1.0.0", "x")["active"]})
    doc = desired_state(engine, "gw-1")
    assert (doc["model"]["name"], list(doc["models"])) == (CYCLE, [CYCLE])  # quality is not deployed
    with Session(engine) as s:
        sha = s.scalars(select(ModelVersion.sha256).where(ModelVersion.name == CYCLE,
                                                          ModelVersion.version == "2.0.0")).one()
    store_report(engine, "gw-1", {"active": None, "rejected": [
        {"name": CYCLE, "version": "2.0.0", "sha256": sha, "reason": "self-test failed"}]})
    decided = evaluate(engine)
    assert len(decided) == 1 and "rolled_back" in decided[0] and "self-test failed" in decided[0], decided
