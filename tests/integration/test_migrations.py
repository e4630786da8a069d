"""The hub's schema under Alembic, on SQLite and PostgreSQL: a new database is made by the
migrations and equals the tables the code declares; a database made by the last release before
Alembic (schema step 2, built here by that release's own code) and one at step 1 upgrade in place
and keep their data."""

from __future__ import annotations

import time
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import (
    JSON,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    insert,
    inspect,
    select,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.store.audit import GENESIS, entry_hash
from hub import audit
from hub.limits import HubLimits
from hub.rollouts import desired_state
from hub.storage import (
    AgentAudit,
    Base,
    Telemetry,
    TrainingSample,
    current_revision,
    hash_token,
    head_revision,
    lookup,
    migrate,
    store_batch,
)
from hub.storage.shared import declared, declared_object
from tests.helpers import hub_step2


def schema_differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(
            conn, opts={"compare_type": True, "include_name": declared,
                                     "include_object": declared_object}), Base.metadata))


def test_a_new_database_is_made_by_the_migrations(blank_engine: Engine) -> None:
    assert current_revision(blank_engine) is None
    migrate(blank_engine)
    assert current_revision(blank_engine) == head_revision()
    assert schema_differences(blank_engine) == []  # the migrations make what the tables declare
    migrate(blank_engine)  # nothing to do the second time
    assert current_revision(blank_engine) == head_revision()


def test_a_step_2_database_upgrades_in_place(blank_engine: Engine) -> None:
    """Built with the last pre-Alembic release's own code, filled, then migrated."""
    hub_step2.migrate(blank_engine)
    admin = hub_step2.add_admin_token(blank_engine)
    gw_token = hub_step2.add_gateway(blank_engine, "old-gw", group="press")
    with Session(blank_engine) as s, s.begin():
        s.add(hub_step2.ModelVersion(name="m", version="1", sha256="a" * 64, manifest={"name": "m"},
                                     created=1.0, archive_sha256="b" * 64, size=10))
        s.flush()
        s.add(hub_step2.Deployment(target="group:press", model="m", version="1", strategy="immediate",
                                   created=1.0, status="active", canary=[], watch_s=0.0, min_labels=0,
                                   margin=0.0))
        hub_step2.record(s, "m", "1", "published", detail="before the upgrade")
    hub_step2.insert_telemetry(blank_engine, "old-gw", [
        {"seq": 7, "kind": "predictions", "items": 1, "created": 1.0, "payload": b"x"}])
    audit.seal(blank_engine)  # the old trail is chained ...

    migrate(blank_engine)
    assert current_revision(blank_engine) == head_revision()
    assert schema_differences(blank_engine) == []
    assert not inspect(blank_engine).has_table("schema_version")
    doc = desired_state(blank_engine, "old-gw")
    assert doc["model"]["sha256"] == "a" * 64  # the group's deployment still applies
    holder = lookup(blank_engine, hash_token(admin))
    assert holder is not None and holder.role == "admin" and holder.name.startswith("admin-")
    assert lookup(blank_engine, hash_token(gw_token)) is not None
    assert audit.verify(blank_engine) == (1, None)  # ... and still verifies after the upgrade
    with Session(blank_engine) as s:
        old = s.scalars(select(Telemetry)).one()
        assert old.seq == 7 and old.ingested is None  # not known: a resend would complete it
    # 64-bit sequence numbers are stored (BIGINT on PostgreSQL after the upgrade)
    big = (1 << 63) - 1
    result = store_batch(blank_engine, "old-gw", [
        {"seq": big, "kind": "predictions", "items": big, "created": 2.0, "payload": b"y"}], HubLimits())
    assert result.stored == 1
    with Session(blank_engine) as s:
        assert s.scalar(select(Telemetry.seq).where(Telemetry.seq == big)) == big


def test_a_step_1_database_upgrades_in_place(blank_engine: Engine) -> None:
    """A hub installed at schema 1 keeps its data when it is upgraded."""
    v1 = MetaData()
    Table("schema_version", v1, Column("version", Integer, primary_key=True), Column("applied", Float))
    Table("gateways", v1, Column("id", String(128), primary_key=True), Column("group", String(128)),
          Column("created", Float), Column("last_seen", Float))
    Table("tokens", v1, Column("token_hash", String(64), primary_key=True), Column("role", String(16)),
          Column("gateway_id", String(128)))
    Table("model_versions", v1, Column("id", Integer, primary_key=True), Column("name", String(128)),
          Column("version", String(64)), Column("sha256", String(64)), Column("manifest", JSON),
          Column("created", Float))
    Table("deployments", v1, Column("id", Integer, primary_key=True), Column("target", String(128)),
          Column("model", String(128)), Column("version", String(64)), Column("strategy", String(16)),
          Column("created", Float))
    Table("telemetry", v1, Column("id", Integer, primary_key=True), Column("gateway_id", String(128)),
          Column("seq", Integer), Column("kind", String(32)), Column("items", Integer),
          Column("payload", LargeBinary), Column("created", Float), Column("received", Float))
    v1.create_all(blank_engine)
    with blank_engine.begin() as conn:
        conn.execute(insert(v1.tables["schema_version"]).values(version=1, applied=0.0))
        conn.execute(insert(v1.tables["gateways"]).values(id="old-gw", group=None, created=1.0))
        conn.execute(insert(v1.tables["model_versions"]).values(
            name="m", version="1", sha256="a" * 64, manifest={"name": "m"}, created=1.0))
        conn.execute(insert(v1.tables["deployments"]).values(
            target="old-gw", model="m", version="1", strategy="immediate", created=1.0))
    migrate(blank_engine)
    migrate(blank_engine)  # idempotent
    assert current_revision(blank_engine) == head_revision()
    doc = desired_state(blank_engine, "old-gw")
    assert doc["model"]["sha256"] == "a" * 64 and doc["deployment"]["status"] == "active"


def test_a_resend_completes_the_ingest_an_older_hub_missed(engine: Engine) -> None:
    """A record stored by an older hub that died before its ingest (ingested unknown) gets its
    samples and audit entries on resend, once; a second resend adds nothing."""
    import json
    import zlib

    from hub.storage import add_gateway

    add_gateway(engine, "gw")
    samples = [{"model": "m", "id": f"p{i}", "ts": 100.0 + i, "inputs": ["a"], "x": [float(i)],
                "label": "OK", "predicted": "OK", "version": "1"} for i in range(5)]
    entry: dict[str, Any] = {"seq": 1, "at": 1.0, "actor": "agent", "action": "activated", "prev": GENESIS}
    entry["hash"] = entry_hash(entry)
    rows = [{"seq": 1, "kind": "training_samples", "items": 5, "created": 1.0,
             "payload": zlib.compress(json.dumps(samples).encode())},
            {"seq": 2, "kind": "audit", "items": 1, "created": 1.0,
             "payload": zlib.compress(json.dumps([entry]).encode())}]
    with Session(engine) as s, s.begin():  # what an older hub left: stored, never ingested
        for r in rows:
            s.add(Telemetry(gateway_id="gw", received=time.time(), ingested=None, **r))
        s.add(TrainingSample(model="m", gateway_id="gw", sample_id="p0", ts=100.0, inputs=["a"], x=[0.0],
                             label="OK", predicted="OK", version="1", hard=False, received=1.0))
    first = store_batch(engine, "gw", rows, HubLimits())
    again = store_batch(engine, "gw", rows, HubLimits())
    assert (first.stored, first.completed, again.completed) == (0, 2, 0)
    with Session(engine) as s:
        ids = sorted(s.scalars(select(TrainingSample.sample_id)))
        chain = [(a.seq, a.chain_ok, a.chain_reason) for a in s.scalars(select(AgentAudit))]
    assert ids == [f"p{i}" for i in range(5)]  # p0 was there already: not twice
    assert chain == [(1, True, None)]


def test_a_revision_4_database_upgrades_in_place(blank_engine: Engine) -> None:
    """A hub at revision 0004 (one report per gateway) upgrades to per-(gateway, model) reports:
    each report becomes the entry of its active model, which also picks the legacy top level of
    the desired state; the next report of that model records no second activation."""
    from alembic import command

    from hub.rollouts import store_report
    from hub.storage import Gateway, GatewayModel, HistoryEntry, add_gateway
    from hub.storage.engine import alembic_config

    with blank_engine.connect() as conn:
        command.upgrade(alembic_config(conn), "0004")
        conn.commit()
    assert current_revision(blank_engine) == "0004"
    old = MetaData()
    for name, columns in (
            ("gateways", [Column("id", String(128), primary_key=True), Column("group", String(128)),
                          Column("created", Float)]),
            ("gateway_status", [Column("gateway_id", String(128), primary_key=True),
                                Column("report", JSON), Column("updated", Float)]),
            ("model_versions", [Column("id", Integer, primary_key=True), Column("name", String(128)),
                                Column("version", String(64)), Column("sha256", String(64)),
                                Column("manifest", JSON), Column("created", Float)]),
            ("deployments", [Column("id", Integer, primary_key=True), Column("target", String(128)),
                             Column("model", String(128)), Column("version", String(64)),
                             Column("strategy", String(16)), Column("created", Float),
                             Column("status", String(16)), Column("canary", JSON),
                             Column("watch_s", Float), Column("min_labels", Integer),
                             Column("margin", Float)])):
        Table(name, old, *columns)
    active = {"name": "m", "version": "1", "sha256": "a" * 64, "since": 5.0}
    with blank_engine.begin() as conn:
        conn.execute(insert(old.tables["gateways"]), [{"id": "gw", "group": None, "created": 1.0},
                                                      {"id": "quiet", "group": None, "created": 1.0}])
        conn.execute(insert(old.tables["gateway_status"]), [
            {"gateway_id": "gw", "report": {"active": active, "health": "warning", "outbox_depth": 4,
                                            "_metric_at": 9.0}, "updated": 10.0},
            {"gateway_id": "quiet", "report": {"active": None}, "updated": 10.0}])
        for name, version, sha in (("m", "1", "a"), ("n", "1", "b")):
            conn.execute(insert(old.tables["model_versions"]).values(
                name=name, version=version, sha256=sha * 64, manifest={"name": name}, created=1.0))
        for model in ("m", "n"):  # n deployed last: without the report, n would be the top level
            conn.execute(insert(old.tables["deployments"]).values(
                target="gw", model=model, version="1", strategy="immediate", created=1.0,
                status="active", canary=[], watch_s=0.0, min_labels=0, margin=0.0))

    migrate(blank_engine)
    assert current_revision(blank_engine) == head_revision()
    assert schema_differences(blank_engine) == []
    with Session(blank_engine) as s:
        rows = [(m.gateway_id, m.model, m.report["active"]["version"], m.report["health"], m.metric_at)
                for m in s.scalars(select(GatewayModel))]
        assert rows == [("gw", "m", "1", "warning", 9.0)]  # "quiet" named no model
        assert s.get(Gateway, "gw").active_model == "m"  # type: ignore[union-attr]
    doc = desired_state(blank_engine, "gw")
    assert set(doc["models"]) == {"m", "n"} and doc["model"]["name"] == "m"
    store_report(blank_engine, "gw", {"active": active, "health": "ok"})
    add_gateway(blank_engine, "new")  # the upgraded schema takes new gateways and their reports
    store_report(blank_engine, "new", {"models": [
        {"name": "n", "active": {"name": "n", "version": "1", "sha256": "b" * 64}}]})
    with Session(blank_engine) as s:
        activated = s.scalars(select(HistoryEntry.gateway_id).where(HistoryEntry.event == "activated")).all()
        assert activated == ["new"]  # gw's m 1 was active before the upgrade: not again
        assert {(m.gateway_id, m.model, m.report.get("health")) for m in s.scalars(select(GatewayModel))} == {
            ("gw", "m", "ok"), ("new", "n", None)}
