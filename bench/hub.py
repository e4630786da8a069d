"""The hub: idle desired-state polls per second (ETag hits) on one uvicorn worker, against a
bare ASGI app answering 304 on the same machine in the same run; telemetry records ingested
per second; both on SQLite and PostgreSQL. The agent side: time from a new desired state to the
version active (download, verify, install, load, self-test, switch), and the upload drain rate
after an outage against the rate at which a gateway makes new records.

The hub runs as its own process (`python -m hub serve`); the load generator is a small raw
HTTP/1.1 keep-alive client, so the client is not what limits the figure."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

from agent.config import BackoffConfig, HubConfig
from agent.demo.sim.broker import free_port
from agent.hublink.uploader import Uploader
from agent.store.codec import encode_readings
from agent.store.outbox import AsyncOutbox, NewRecord, Priority
from agent.types import Quality, Reading
from bench.common import emit, quick, trained_bundle, use_all_cores
from hub.registry import publish
from hub.rollouts import deploy
from hub.storage import add_admin_token, add_gateway, open_db

PG_URL = os.environ.get("EDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
GATEWAYS = 200
CONNECTIONS = 32

BARE_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 304, "headers": [(b"etag", b'"x"')]})
    await send({"type": "http.response.body", "body": b""})
'''


def _wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=0.5)
            return
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError("server exited") from None
            time.sleep(0.1)
    raise RuntimeError("server did not start")


async def _poll_load(port: int, requests: list[bytes], seconds: float) -> float:
    """Requests per second over keep-alive connections, each cycling through its requests."""
    done = 0
    stop_at = time.monotonic() + seconds

    async def worker(k: int) -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        i = k
        while time.monotonic() < stop_at:
            writer.write(requests[i % len(requests)])
            i += CONNECTIONS
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 304"):
                raise RuntimeError(f"expected 304, got {head[:60]!r}")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length:
                await reader.readexactly(length)
            done += 1
        writer.close()

    started = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
    return done / (time.monotonic() - started)


def _request(port: int, path: str, token: str, etag: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"If-None-Match: {etag}\r\n\r\n").encode()


def _database(kind: str, root: Path) -> tuple[str, Any]:
    if kind == "sqlite":
        return f"sqlite:///{root / 'hub.db'}", None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    return f"{PG_URL}?options=-csearch_path%3D{schema}", (admin, schema)


def _drop(cleanup: Any) -> None:
    if cleanup is not None:
        admin, schema = cleanup
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def hub_figures(kind: str, bundle: Path, pub: Path, seconds: float, bare: float) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"bench-hub-{kind}-"))
    try:
        url, cleanup = _database(kind, root)
    except Exception as exc:  # no PostgreSQL here: say so, measure the rest
        emit(bench="hub", db=kind, skipped=f"database not reachable: {str(exc).splitlines()[0]}")
        return
    try:
        engine = open_db(url)
        tokens = {f"gw-{i:04d}": add_gateway(engine, f"gw-{i:04d}", group="fleet") for i in range(GATEWAYS)}
        admin = add_admin_token(engine)
        publish(engine, root / "data", bundle, [pub])
        deploy(engine, "bench-gbt", "1", "group:fleet", "immediate")
        engine.dispose()
        port = free_port()
        proc = subprocess.Popen([sys.executable, "-m", "hub", "--db", url, "--data", str(root / "data"),
                                 "serve", "--port", str(port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            _wait_up(port, proc)
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
                etags = {gw: c.get(f"/api/v1/gateways/{gw}/desired",
                                   headers={"Authorization": f"Bearer {t}"}).headers["etag"]
                         for gw, t in tokens.items()}
            requests = [_request(port, f"/api/v1/gateways/{gw}/desired", t, etags[gw])
                        for gw, t in tokens.items()]
            polls = asyncio.run(_poll_load(port, requests, seconds))
            ingest = asyncio.run(_ingest_load(port, tokens, seconds))
            with httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
                stored = sum(1 for _ in c.get("/api/v1/gateways",
                                              headers={"Authorization": f"Bearer {admin}"}).json())
        finally:
            proc.terminate()
            proc.wait(10)
        emit(bench="hub", db=kind, gateways=GATEWAYS, idle_polls_per_s=round(polls),
             goal_idle_polls_per_s=2000, bare_asgi_304_per_s=round(bare),
             ratio=round(polls / bare, 2), telemetry_records_per_s=round(ingest), fleet_rows=stored)
    finally:
        _drop(cleanup)
        shutil.rmtree(root, ignore_errors=True)


async def _ingest_load(port: int, tokens: dict[str, str], seconds: float) -> float:
    """Telemetry batches of 500 records (about 1.4 kB each, as a gateway's readings records)."""
    payload = gzip.compress(encode_readings(_readings(100)))
    stored = 0
    stop_at = time.monotonic() + seconds
    gateways = list(tokens)[:8]

    async def worker(gw: str) -> None:
        nonlocal stored
        seq = 1
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                     headers={"Authorization": f"Bearer {tokens[gw]}"}) as c:
            while time.monotonic() < stop_at:
                records = [{"seq": seq + i, "kind": "readings", "items": 100, "created": time.time(),
                            "payload_hex": payload.hex()} for i in range(500)]
                body = gzip.compress(json.dumps({"gateway_id": gw, "first_seq": seq,
                                                 "last_seq": seq + 499, "records": records}).encode(), 1)
                r = await c.post(f"/api/v1/gateways/{gw}/telemetry", content=body,
                                 headers={"Content-Encoding": "gzip"})
                r.raise_for_status()
                stored += r.json()["stored"]
                seq += 500

    started = time.monotonic()
    await asyncio.gather(*(worker(gw) for gw in gateways))
    return stored / (time.monotonic() - started)


def _readings(n: int) -> list[Reading]:
    now = time.time()
    return [Reading("plc", f"tag{i % 100}", 20.0 + (i % 7) * 0.37, now + i // 100, now + i // 100,
                    Quality.GOOD) for i in range(n)]


def bare_baseline(seconds: float) -> float:
    root = Path(tempfile.mkdtemp(prefix="bench-bare-"))
    (root / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(port),
                             "--log-level", "warning"], cwd=root,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_up(port, proc)
        req = [_request(port, "/x", "t", '"x"')]
        return asyncio.run(_poll_load(port, req, seconds))
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(root, ignore_errors=True)


def drain_figures(seconds: float) -> None:
    """A 10,000-record backlog of realistic records drained into a hub (SQLite, in this process's
    thread) against the rate at which a gateway with 100 tags at 1 Hz makes records."""
    from hub.server import HubServer

    root = Path(tempfile.mkdtemp(prefix="bench-drain-"))
    try:
        engine = open_db(f"sqlite:///{root / 'hub.db'}")
        token = add_gateway(engine, "gw")
        server = HubServer(engine, root / "data")
        server.start()
        readings = NewRecord("readings", Priority.READINGS, encode_readings(_readings(100)), 100)

        async def run() -> float:
            async with AsyncOutbox(root / "outbox.db", 1 << 32) as outbox:
                for _ in range(10):
                    await outbox.append([readings] * 1000)
                cfg = HubConfig(url=server.url, token=token, upload_interval_s=0.05,
                                reconnect=BackoffConfig(initial_s=0.05, max_s=0.3))
                uploader = Uploader(cfg, "gw", outbox)
                started = time.monotonic()
                task = asyncio.create_task(uploader.run())
                while uploader.uploaded_records < 10_000:
                    if time.monotonic() - started > 300:
                        raise RuntimeError("the backlog did not drain in 5 minutes")
                    await asyncio.sleep(0.05)
                elapsed = time.monotonic() - started
                task.cancel()
                return 10_000 / elapsed

        drain = asyncio.run(run())
        server.stop()
        # the agent flushes once a second: a readings record (100 tags at 1 Hz), a predictions
        # record, and labels/events records now and then: about 3 records per second
        new_rate = 3.0
        emit(bench="upload_drain", backlog_records=10_000, record_bytes=len(readings.payload),
             drain_records_per_s=round(drain), new_records_per_s=new_rate,
             ratio=round(drain / new_rate), outage_hours_drained_per_hour=round(drain / new_rate))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _variant(bundle: Path, version: str, out: Path, key: Path) -> Path:
    from agent.models.bundle import sign_bundle, write_manifest

    shutil.copytree(bundle, out)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = version
    write_manifest(out, manifest)
    sign_bundle(out, key)
    return out


def deploy_to_active(bundle: Path, pub: Path, key: Path, rounds: int) -> None:
    """Wall time from a poll that sees a new version to that version serving predictions."""
    from agent.config import parse_config
    from agent.service.agent import Agent
    from hub.server import HubServer
    root = Path(tempfile.mkdtemp(prefix="bench-deploy-"))
    try:
        engine = open_db(f"sqlite:///{root / 'hub.db'}")
        token = add_gateway(engine, "gw")
        admin = add_admin_token(engine)
        versions = [_variant(bundle, f"1.{i}", root / f"v{i}", key) for i in range(rounds)]
        for v in versions:
            publish(engine, root / "data", v, [pub])
        server = HubServer(engine, root / "data")
        server.start()
        cfg = parse_config({
            "gateway_id": "gw", "state_dir": str(root / "state"), "health": {"enabled": False},
            "sources": [{"type": "opcua", "name": "plc", "endpoint": f"opc.tcp://127.0.0.1:{free_port()}",
                         "nodes": [{"node_id": "ns=2;i=1", "tag": "x"}]}],
            "model": {"trusted_keys": [str(pub)], "rollback": {"watch_s": 0}},
            "hub": {"url": server.url, "token": token, "poll_interval_s": 3600}})

        async def run() -> list[float]:
            agent = Agent(cfg)
            stop = asyncio.Event()
            task = asyncio.create_task(agent.run(stop))
            while agent.sync is None:
                if task.done():
                    task.result()
                await asyncio.sleep(0.01)
            times = []
            async with httpx.AsyncClient(base_url=server.url,
                                         headers={"Authorization": f"Bearer {token}"}) as client:
                for i in range(rounds):
                    r = await client.post("/api/v1/deployments", headers={"Authorization": f"Bearer {admin}"},
                                          json={"model": "bench-gbt", "version": f"1.{i}", "to": "gw"})
                    r.raise_for_status()
                    started = time.perf_counter()
                    await agent.sync.sync_once(client)
                    times.append(time.perf_counter() - started)
                    assert agent.model is not None and agent.model.version == f"1.{i}"
            stop.set()
            await task
            return times

        times = asyncio.run(run())
        server.stop()
        emit(bench="deploy_to_active", rounds=rounds, median_ms=round(statistics.median(times) * 1e3, 1),
             max_ms=round(max(times) * 1e3, 1),
             note="poll answered -> download, sha256, signature, install, load, self-test, switch")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    use_all_cores()
    seconds = 3.0 if quick() else 10.0
    bundle, pub, _ = trained_bundle()
    bare = bare_baseline(seconds)
    emit(bench="hub_baseline", bare_asgi_304_per_s=round(bare))
    for kind in ("sqlite", "postgresql"):
        hub_figures(kind, bundle, pub, seconds, bare)
    drain_figures(seconds)
    deploy_to_active(bundle, pub, bundle.parent / "k.pem", 3 if quick() else 8)


if __name__ == "__main__":
    main()
