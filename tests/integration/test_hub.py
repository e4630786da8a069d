"""The hub over loopback HTTP, on SQLite and PostgreSQL: auth, desired state with ETag, bundle
download with Range, idempotent telemetry, and an agent that uploads everything exactly once."""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import shutil
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG
from agent.errors import BundleError
from agent.models.bundle import sign_bundle
from hub.cli import main as hub_main
from hub.registry import HubError, publish
from hub.rollouts import deploy
from hub.server import HubServer
from hub.storage import Telemetry, add_admin_token, add_gateway
from tests.helpers.running import base_config, opcua_source, running_agent, wait_for


@pytest.fixture()
def hub(engine: Engine, tmp_path: Path) -> Iterator[HubServer]:
    server = HubServer(engine, tmp_path / "hub-data", token_cache_s=TOKEN_CACHE_S)
    server.start()
    yield server
    server.stop()


TOKEN_CACHE_S = 1.0  # how long a revoked token may still work in these tests


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


CREATED = time.time()


def batch(gateway: str, seqs: list[int]) -> bytes:
    doc = {"gateway_id": gateway, "first_seq": min(seqs), "last_seq": max(seqs),
           # created today, the same for every batch (a record sent again is the same record):
           # a record of 1970 is past every retention period, and the hub's retention sweep
           # (on PostgreSQL, at its start) deleted it whenever it ran mid-test (1 row of 4)
           "records": [{"seq": s, "kind": "predictions", "items": 3, "created": CREATED,
                        "payload_hex": f"record {s}".encode().hex()} for s in seqs]}
    return gzip.compress(json.dumps(doc).encode())


def test_tokens_and_gateway_isolation(hub: HubServer, engine: Engine) -> None:
    a, b = add_gateway(engine, "line-a"), add_gateway(engine, "line-b")
    with httpx.Client(base_url=hub.url) as c:
        assert c.get("/api/v1/gateways/line-a/desired").status_code == 401
        assert c.get("/api/v1/gateways/line-a/desired", headers=auth("nope")).status_code == 401
        denied = c.get("/api/v1/gateways/line-a/desired", headers=auth(b))
        assert denied.status_code == 403 and "line-a" not in denied.text  # nothing leaked
        assert c.post("/api/v1/gateways/line-a/telemetry", headers=auth(b),
                      content=batch("line-a", [1])).status_code == 403
        first = c.get("/api/v1/gateways/line-a/desired", headers=auth(a))
        assert first.status_code == 200 and first.json()["model"] is None
        idle = c.get("/api/v1/gateways/line-a/desired",
                     headers={**auth(a), "If-None-Match": first.headers["etag"]})
        assert idle.status_code == 304 and idle.content == b""
        # the token is checked before anything else about the request: without a valid one a
        # malformed gateway id is a 401 too, never a 422 that describes the path's rules
        for path in ("/api/v1/gateways/bad%20id!/desired", f"/api/v1/gateways/{'x' * 300}/desired"):
            for headers in ({}, auth("nope")):
                assert c.get(path, headers=headers).status_code == 401
        assert c.post("/api/v1/gateways/bad%20id!/status", json={}).status_code == 401
        assert c.post("/api/v1/gateways/bad%20id!/telemetry", content=b"x").status_code == 401


def test_telemetry_is_stored_once(hub: HubServer, engine: Engine) -> None:
    token = add_gateway(engine, "line-a")
    headers = {**auth(token), "Content-Encoding": "gzip"}
    with httpx.Client(base_url=hub.url) as c:
        r1 = c.post("/api/v1/gateways/line-a/telemetry", headers=headers, content=batch("line-a", [1, 2, 3]))
        r2 = c.post("/api/v1/gateways/line-a/telemetry", headers=headers, content=batch("line-a", [2, 3, 4]))
        bad = c.post("/api/v1/gateways/line-a/telemetry", headers=headers, content=b"\x1f\x8bnot gzip")
    assert r1.json() == {"received": 3, "stored": 3, "duplicates": 0}
    assert r2.json() == {"received": 3, "stored": 1, "duplicates": 2}
    assert bad.status_code == 400 and "gzip" in bad.json()["detail"]  # the encoding is broken
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Telemetry)) == 4


def test_publish_deploy_and_download_with_range(hub: HubServer, engine: Engine,
                                                trained: dict[str, Path], tmp_path: Path) -> None:
    token = add_gateway(engine, "line-a", group="press-shop")
    add_admin_token(engine)
    bundle = publish(engine, hub.data, trained["bundle"], [trained["pub"]])
    assert publish(engine, hub.data, trained["bundle"], [trained["pub"]]).sha256 == bundle.sha256
    tampered = tmp_path / "tampered"
    shutil.copytree(trained["bundle"], tampered)
    with (tampered / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError):
        publish(engine, hub.data, tampered, [trained["pub"]])
    with pytest.raises(BundleError):  # signed, but by a key the hub does not trust
        other = tmp_path / "other-signed"
        shutil.copytree(trained["bundle"], other)
        sign_bundle(other, trained["other_key"])
        publish(engine, hub.data, other, [trained["pub"]])
    with pytest.raises(HubError, match="not published"):
        deploy(engine, "moulding-nok", "9.9.9", "line-a", "immediate")
    deploy(engine, "moulding-nok", "1.0.0", "group:press-shop", "immediate")  # as the CLI would
    with httpx.Client(base_url=hub.url, headers=auth(token)) as c:
        deadline = time.monotonic() + 1.0  # a change made outside the hub reaches it within 1 s
        desired = c.get("/api/v1/gateways/line-a/desired").json()
        while desired["model"] is None and time.monotonic() < deadline:
            time.sleep(0.02)
            desired = c.get("/api/v1/gateways/line-a/desired").json()
        assert desired["model"]["version"] == "1.0.0" and desired["model"]["sha256"] == bundle.sha256
        whole = c.get(desired["model"]["url"])
        part = c.get(desired["model"]["url"], headers={"Range": "bytes=100-"})
    assert whole.status_code == 200 and part.status_code == 206
    assert part.content == whole.content[100:]  # a broken download resumes where it stopped
    with tarfile.open(fileobj=io.BytesIO(whole.content)) as tar:
        assert any(n.endswith("manifest.json") for n in tar.getnames())


def test_edge_hub_cli(tmp_path: Path, trained: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    db = f"sqlite:///{tmp_path / 'cli.db'}"
    common = ["--db", db, "--data", str(tmp_path / "data")]
    assert hub_main([*common, "gateways", "add", "line-7", "--group", "g"]) == 0
    assert len(capsys.readouterr().out.strip()) >= 40  # the token, shown once
    assert hub_main([*common, "publish", str(trained["bundle"]), "--trusted-key", str(trained["pub"])]) == 0
    assert hub_main([*common, "deploy", "moulding-nok", "1.0.0", "--to", "line-7"]) == 0
    assert hub_main([*common, "deploy", "moulding-nok", "1.0.0", "--to", "nowhere"]) == 2
    assert "no such gateway or group" in capsys.readouterr().err
    assert hub_main([*common, "deploy", "moulding-nok", "1.0.0", "--to", "g", "--strategy", "canary"]) == 0
    assert "to group:g (canary)" in capsys.readouterr().out


async def test_agent_uploads_every_record_once_after_a_hub_outage(
        engine: Engine, tmp_path: Path, trained: dict[str, Path]) -> None:
    token = add_gateway(engine, "test-gw")
    server = HubServer(engine, tmp_path / "hub-data")  # not started: the hub is down
    port = free_port()
    async with SimulatedLine(SimOptions(opcua_port=port)) as line:
        cfg: dict[str, Any] = base_config(
            tmp_path / "agent", [opcua_source(port, line.ns)],
            features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
            model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
            hub={"url": server.url, "token": token, "upload_interval_s": 0.1,
                 "reconnect": {"initial_s": 0.1, "max_s": 0.3}})
        async with running_agent(cfg) as agent:
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            for _ in range(30):
                await line.make_part()
                await asyncio.sleep(0.01)
            await wait_for(lambda: agent.predictions >= 30, what="predictions")
            await asyncio.sleep(0.5)
            assert agent.uploader is not None and agent.uploader.uploaded_records == 0
            backlog = (await agent.outbox.stats()).depth if agent.outbox else 0
            assert backlog > 0
            await asyncio.to_thread(server.start)  # the hub comes back
            await wait_for(lambda: agent.uploader is not None
                           and agent.uploader.uploaded_records >= agent.records_written, 20,
                           "backlog drained")
            written = agent.records_written
        await asyncio.to_thread(server.stop)
    with Session(engine) as s:
        rows = s.scalars(select(Telemetry.seq).where(Telemetry.gateway_id == "test-gw")).all()
    assert len(rows) == len(set(rows)) >= written  # everything arrived, nothing twice


def test_admin_api_and_gateway_management(hub: HubServer, engine: Engine, trained: dict[str, Path],
                                          tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gw = add_gateway(engine, "line-a", group="press")
    admin = add_admin_token(engine)
    archive = tmp_path / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(trained["bundle"], arcname="bundle")
    keys_dir = hub.data / "trusted-keys"
    with httpx.Client(base_url=hub.url) as c:
        # a gateway token can do nothing an admin does
        for method, path in (("GET", "/api/v1/gateways"), ("GET", "/api/v1/models"),
                             ("POST", "/api/v1/models"), ("GET", "/api/v1/history")):
            assert c.request(method, path, headers=auth(gw), content=b"").status_code == 403
        assert c.post("/api/v1/models", headers=auth(admin), content=archive.read_bytes()).status_code == 422
        keys_dir.mkdir(parents=True)
        shutil.copy(trained["pub"], keys_dir / "release.pub")  # the hub trusts keys put here
        up = c.post("/api/v1/models", headers=auth(admin), content=archive.read_bytes())
        assert up.status_code == 201 and up.json()["version"] == "1.0.0"
        garbage = c.post("/api/v1/models", headers=auth(admin), content=b"not a tar")
        assert garbage.status_code == 422 and "not a readable bundle" in garbage.text
        bad = c.post("/api/v1/deployments", headers=auth(admin),
                     json={"model": "moulding-nok", "version": "1.0.0", "to": "group:none"})
        assert bad.status_code == 422 and "no gateways" in bad.text
        ok = c.post("/api/v1/deployments", headers=auth(admin),
                    json={"model": "moulding-nok", "version": "1.0.0", "to": "group:press"})
        assert ok.status_code == 201
        desired = c.get("/api/v1/gateways/line-a/desired", headers=auth(gw)).json()
        assert desired["model"]["version"] == "1.0.0"
        report = c.post("/api/v1/gateways/line-a/status", headers=auth(gw),
                        content=json.dumps({"active": {"name": "moulding-nok", "version": "1.0.0",
                                                       "sha256": up.json()["sha256"], "since": 1.0},
                                            "outbox_depth": 12}))
        assert report.status_code == 200
        assert c.post("/api/v1/gateways/line-a/status", headers=auth(gw), content=b"{").status_code == 422
        fleet = c.get("/api/v1/gateways", headers=auth(admin)).json()
        assert fleet[0]["status"]["outbox_depth"] == 12
        events = [h["event"] for h in c.get("/api/v1/history", headers=auth(admin)).json()]
        assert {"published", "deployed", "activated"} <= set(events)
        assert "openapi" in c.get("/openapi.json").json()

    db = engine.url.render_as_string(hide_password=False)
    common = ["--db", db, "--data", str(hub.data)]
    assert hub_main([*common, "gateways", "list"]) == 0
    assert "line-a" in capsys.readouterr().out
    assert hub_main([*common, "gateways", "group", "line-a", "welding"]) == 0
    assert hub_main([*common, "gateways", "token", "line-a"]) == 0
    new_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert hub_main([*common, "rollback", "moulding-nok", "--to", "1.0.0"]) == 0
    assert hub_main([*common, "rollback", "moulding-nok", "--to", "3.0.0"]) == 2
    assert hub_main([*common, "history", "moulding-nok"]) == 0
    assert "operator rollback" in capsys.readouterr().out
    assert hub_main([*common, "gateways", "remove", "line-a"]) == 0
    assert hub_main([*common, "gateways", "group", "nobody", "x"]) == 2
    time.sleep(TOKEN_CACHE_S + 0.2)  # revocation reaches the cache
    with httpx.Client(base_url=hub.url) as c:
        assert c.get("/api/v1/gateways/line-a/desired", headers=auth(gw)).status_code == 401
        assert c.get("/api/v1/gateways/line-a/desired", headers=auth(new_token)).status_code == 401


def test_sqlite_writers_queue_and_a_held_lock_is_a_503(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Gateways uploading at once wait for SQLite's write lock (WAL, busy timeout) and all get
    stored; a lock held past the timeout is answered 503 with Retry-After, not a 500."""
    import sqlite3

    from sqlalchemy import create_engine

    import hub.storage.engine as storage_engine
    from hub.storage import migrate

    db = tmp_path / "hub.db"
    engine = create_engine(f"sqlite:///{db}")
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == storage_engine.SQLITE_BUSY_MS
    tokens = {f"gw-{i}": add_gateway(engine, f"gw-{i}") for i in range(8)}
    headers = {gw: {**auth(t), "Content-Encoding": "gzip"} for gw, t in tokens.items()}
    server = HubServer(engine, tmp_path / "hub-data")
    server.start()
    try:
        async def upload(gw: str) -> list[int]:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as c:
                codes = []
                for k in range(4):
                    seqs = list(range(1 + 300 * k, 301 + 300 * k))
                    r = await c.post(f"/api/v1/gateways/{gw}/telemetry", content=batch(gw, seqs),
                                     headers=headers[gw])
                    codes.append(r.status_code)
                return codes

        async def all_at_once() -> list[list[int]]:
            return await asyncio.gather(*(upload(gw) for gw in tokens))

        assert asyncio.run(all_at_once()) == [[200] * 4] * 8
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Telemetry)) == 8 * 4 * 300
    finally:
        server.stop()
        engine.dispose()
    # a hub whose busy timeout is short, and another process holding the write lock longer
    monkeypatch.setattr(storage_engine, "SQLITE_BUSY_MS", 500)
    engine = create_engine(f"sqlite:///{db}")
    migrate(engine)
    server = HubServer(engine, tmp_path / "hub-data")
    server.start()
    try:
        holder = sqlite3.connect(db)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                busy = c.post("/api/v1/gateways/gw-0/telemetry", content=batch("gw-0", [5000]),
                              headers=headers["gw-0"])
        finally:
            holder.rollback()
            holder.close()
        assert busy.status_code == 503 and busy.headers["retry-after"] == "2", busy.text
        assert "busy" in busy.json()["detail"]
        with httpx.Client(base_url=server.url, timeout=30) as c:
            again = c.post("/api/v1/gateways/gw-0/telemetry", content=batch("gw-0", [5000]),
                           headers=headers["gw-0"])
        assert again.status_code == 200 and again.json()["stored"] == 1
    finally:
        server.stop()
        engine.dispose()
