"""A fleet against the hub on PostgreSQL: 5,000 simulated gateways (async httpx, each its own
token) polling their desired state with ETags and uploading telemetry, against 1 and 2 API
workers (`edge-hub serve --workers N --no-jobs`); the time from a deployment to every worker's
desired state and to the last gateway's; 20 races of trigger evaluations and of rollout
evaluations on 2 job workers (`edge-hub worker`), counting retrains and promotions.

How the 2-to-1 ratio is measured on a 2-core machine where the load generator needs CPU too:
the 1-worker and the 2-worker servers run side by side and are measured in turns (five trials
each, medians), so that other work on the machine weighs on both alike. The polls that measure
throughput come from bench.hub's minimal keep-alive client (cheap enough for the workers to
saturate; every token cached in every worker first): ``raw_client_wall_ratio_2_to_1`` is the
ratio of what the two servers answered per second. The benchmark also reads the CPU time the
server processes used meanwhile (psutil): ``polls_per_server_cpu_s`` times N is what N workers
serve with a core each, as on hub machines whose gateways are elsewhere; ``ratio_2_to_1`` is the
ratio of those. The httpx gateways (5,000 tokens) then measure latency: flat out (bound by
httpx's own CPU, reported with it) and paced at 500 polls/s, an idle fleet polling every 10 s.

Run: python -m bench.fleet (BENCH_QUICK=1: 1,000 gateways, short phases; BENCH_FLEET_PARTS=
polls,deploy,races to run some; BENCH_FLEET_RACES=N). JSON lines."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psutil
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.broker import free_port
from agent.store.codec import encode_json, encode_readings
from bench.common import emit, quick, scratch_dir, trained_bundle, use_all_cores
from bench.hub import _poll_load, _readings, _request, _variant
from hub.fleet.jobs import JobContext
from hub.fleet.queue import HubQueue
from hub.registry import publish
from hub.retrain import set_policy
from hub.rollouts import RolloutPolicy, deploy
from hub.storage import (
    Deployment,
    Gateway,
    HistoryEntry,
    ModelPolicy,
    RetrainRun,
    Token,
    add_admin_token,
    hash_token,
    open_db,
)
from hub.storage.tokens import new_token

PG_URL = os.environ.get("EDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MODEL = "bench-gbt"
CONNECTIONS = 64
RACES = int(os.environ.get("BENCH_FLEET_RACES", "20"))


def _gateways(engine: Engine, n: int) -> dict[str, str]:
    """n gateways in group fleet, each with its own token (one bulk insert, not n commands)."""
    tokens = {f"gw-{i:05d}": new_token() for i in range(n)}
    now = time.time()
    with Session(engine) as s, s.begin():
        s.execute(insert(Gateway), [{"id": g, "group": "fleet", "created": now} for g in tokens])
        s.execute(insert(Token), [{"token_hash": hash_token(t), "role": "gateway", "gateway_id": g,
                                   "created": now} for g, t in tokens.items()])
    return tokens


def _serve(url: str, data: Path, port: int, workers: int, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "hub", "serve", "--db", url, "--data", str(data), "--port", str(port),
            "--log-level", "warning", "--no-jobs", "--workers", str(workers)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            if proc.poll() is not None:
                raise RuntimeError("edge-hub serve exited") from None
        time.sleep(0.2)
    raise RuntimeError("edge-hub serve did not start")


def _cpu_s(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds used by the server and its worker processes so far."""
    try:
        root = psutil.Process(proc.pid)
        total = 0.0
        for p in [root, *root.children(recursive=True)]:
            t = p.cpu_times()
            total += t.user + t.system
        return total
    except psutil.Error:
        return 0.0


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def _p(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _etags(port: int, tokens: dict[str, str]) -> dict[str, str]:
    """Each gateway's first poll (its token looked up and cached, its state made)."""
    out: dict[str, str] = {}
    gws = list(tokens)

    async def lane(k: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as c:
            for gw in gws[k::CONNECTIONS]:
                for attempt in range(3):  # a connection the server closed under load: again
                    try:
                        r = await c.get(f"/api/v1/gateways/{gw}/desired",
                                        headers={"Authorization": f"Bearer {tokens[gw]}"})
                        break
                    except httpx.TransportError:
                        if attempt == 2:
                            raise
                r.raise_for_status()
                out[gw] = r.headers["etag"]

    await asyncio.gather(*(lane(k) for k in range(CONNECTIONS)))
    return out


async def _raw_sweep(port: int, requests: list[bytes], connections: int = 32) -> None:
    """Every request once, over fresh keep-alive connections (bench.hub's minimal client)."""
    async def worker(k: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for request in requests[k::connections]:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                           if line.lower().startswith(b"content-length:")), 0)
            if length:
                await reader.readexactly(length)
        writer.close()
    await asyncio.gather(*(worker(k) for k in range(connections)))


async def _flat_out(port: int, tokens: dict[str, str], etags: dict[str, str],
                    seconds: float) -> dict[str, Any]:
    """Idle polls (304) as fast as the workers answer, over CONNECTIONS keep-alive connections."""
    gws = list(tokens)
    latencies: list[float] = []
    unexpected = 0
    stop_at = time.monotonic() + seconds

    async def worker(k: int) -> None:  # a client per connection: no shared pool to queue on
        nonlocal unexpected
        i = k
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as c:
            while time.monotonic() < stop_at:
                gw = gws[i % len(gws)]
                i += CONNECTIONS
                t0 = time.perf_counter()
                r = await c.get(f"/api/v1/gateways/{gw}/desired", headers={
                    "Authorization": f"Bearer {tokens[gw]}", "If-None-Match": etags[gw]})
                latencies.append(time.perf_counter() - t0)
                unexpected += r.status_code != 304

    started = time.monotonic()
    await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
    elapsed = time.monotonic() - started
    return {"polls": len(latencies), "elapsed": elapsed, "unexpected": unexpected, "latencies": latencies}


async def _paced(port: int, tokens: dict[str, str], etags: dict[str, str], rate: float,
                 seconds: float, lanes: int = 32) -> list[float]:
    """Every gateway polls in turn at ``rate`` polls/s in all (open loop): an idle fleet. The
    requests go out on ``lanes`` connections, each a client of its own (httpx's shared pool,
    with thousands of requests waiting on it, costs more CPU than the hub and would be what the
    latency measures)."""
    gws = list(tokens)
    latencies: list[float] = []
    total = int(rate * seconds)
    start = time.perf_counter()

    async def lane(k: int) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as c:
            for i in range(k, total, lanes):
                delay = start + i / rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                gw = gws[i % len(gws)]
                t0 = time.perf_counter()
                r = await c.get(f"/api/v1/gateways/{gw}/desired", headers={
                    "Authorization": f"Bearer {tokens[gw]}", "If-None-Match": etags[gw]})
                latencies.append(time.perf_counter() - t0)
                assert r.status_code == 304, r.status_code

    await asyncio.gather(*(lane(k) for k in range(lanes)))
    return latencies


async def _ingest(port: int, tokens: dict[str, str], seconds: float) -> dict[str, Any]:
    """Gateways upload telemetry as the agent does: gzip JSON batches of 20 records, each a
    readings record of 100 values; distinct gateways on every connection."""
    payload = encode_readings(_readings(100)).hex()
    gws = list(tokens)
    records = 0
    latencies: list[float] = []
    stop_at = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60,
                                 limits=httpx.Limits(max_connections=16)) as c:
        async def worker(k: int) -> None:
            nonlocal records
            seq, i = 1, k
            while time.monotonic() < stop_at:
                gw = gws[i % len(gws)]
                i += 16
                batch = [{"seq": seq + j, "kind": "readings", "items": 100, "created": time.time(),
                          "payload_hex": payload} for j in range(20)]
                body = gzip.compress(json.dumps({"gateway_id": gw, "first_seq": seq, "last_seq": seq + 19,
                                                 "records": batch}).encode())
                t0 = time.perf_counter()
                r = await c.post(f"/api/v1/gateways/{gw}/telemetry", content=body, headers={
                    "Authorization": f"Bearer {tokens[gw]}", "Content-Encoding": "gzip"})
                latencies.append(time.perf_counter() - t0)
                r.raise_for_status()
                records += int(r.json()["stored"])
                if i // 16 % len(gws) == 0:
                    seq += 20
        started = time.monotonic()
        await asyncio.gather(*(worker(k) for k in range(16)))
        elapsed = time.monotonic() - started
    return {"records_per_s": records / elapsed, "p99_batch_s": _p(latencies, 0.99)}


def poll_figures(url: str, data: Path, tokens: dict[str, str], seconds: float, trials: int) -> None:
    """1 and 2 workers side by side (two servers, two ports), measured in turns (1, 2, 1, 2, ...)
    so that other work on the machine weighs on both alike; medians of the trials."""
    servers = {}
    try:
        for workers in (1, 2):
            port = free_port()
            servers[workers] = (_serve(url, data, port, workers), port)
        etags: dict[str, str] = {}
        requests: dict[int, list[bytes]] = {}
        for workers, (_, port) in servers.items():
            etags = asyncio.run(_etags(port, tokens))  # the same ETags on every worker
            requests[workers] = [_request(port, f"/api/v1/gateways/{g}/desired", t, etags[g])
                                 for g, t in tokens.items()]
            for _ in range(4 * workers):  # warm: every token cached in every worker (a connection
                asyncio.run(_raw_sweep(port, requests[workers]))  # sticks to one worker)
        raw: dict[int, list[float]] = {1: [], 2: []}
        per_cpu: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(trials):
            for workers, (proc, port) in servers.items():
                cpu0, t0 = _cpu_s(proc), time.monotonic()
                rate = asyncio.run(_poll_load(port, requests[workers], seconds))
                cpu = _cpu_s(proc) - cpu0
                raw[workers].append(rate)
                per_cpu[workers].append(rate * (time.monotonic() - t0) / max(cpu, 1e-9))
        for workers, (_, port) in servers.items():
            client0 = time.process_time()
            run = asyncio.run(_flat_out(port, tokens, etags, seconds))
            client = time.process_time() - client0
            emit(bench="fleet_polls", workers=workers, gateways=len(tokens), trials=trials,
                 raw_client_polls_per_s=round(statistics.median(raw[workers])),
                 raw_client_trials=[round(r) for r in raw[workers]],
                 polls_per_server_cpu_s=round(statistics.median(per_cpu[workers])),
                 capacity_polls_per_s=round(statistics.median(per_cpu[workers]) * workers),
                 httpx_polls_per_s=round(run["polls"] / run["elapsed"]),
                 httpx_client_cpu_cores=round(client / run["elapsed"], 2), unexpected=run["unexpected"],
                 httpx_p50_ms=round(_p(run["latencies"], 0.5) * 1000, 1),
                 httpx_p99_ms=round(_p(run["latencies"], 0.99) * 1000, 1))
        emit(bench="fleet_ratio",
             ratio_2_to_1=round(2 * statistics.median(per_cpu[2]) / statistics.median(per_cpu[1]), 2),
             raw_client_wall_ratio_2_to_1=round(statistics.median(raw[2]) / statistics.median(raw[1]), 2),
             target=1.6, load_average=round(os.getloadavg()[0], 2))
        proc, port = servers[2]
        p99s = []
        for _ in range(trials):
            lat = asyncio.run(_paced(port, tokens, etags, 500.0, seconds))  # 5,000 gateways every 10 s
            p99s.append(_p(lat, 0.99) * 1000)
        emit(bench="fleet_idle_poll_latency", workers=2, gateways=len(tokens), rate_per_s=500.0,
             p50_ms=round(_p(lat, 0.5) * 1000, 1), p99_ms=round(statistics.median(p99s), 1),
             p99_trials_ms=[round(p, 1) for p in p99s], target_ms=50,
             load_average=round(os.getloadavg()[0], 2))
        for workers, (proc, port) in servers.items():
            cpu0, started = _cpu_s(proc), time.monotonic()
            ingest = asyncio.run(_ingest(port, tokens, seconds))
            cpu = _cpu_s(proc) - cpu0
            emit(bench="fleet_ingest", workers=workers, records_per_s=round(ingest["records_per_s"]),
                 readings_per_s=round(ingest["records_per_s"] * 100),
                 server_cpu_cores=round(cpu / (time.monotonic() - started), 2),
                 p99_batch_ms=round(ingest["p99_batch_s"] * 1000, 1))
    finally:
        for proc, _ in servers.values():
            _stop(proc)


def deploy_figures(url: str, data: Path, tokens: dict[str, str], bundle: Path, key: Path, pub: Path,
                   root: Path) -> None:
    """Two API workers as two processes (two ports, as two machines): a deployment reaches
    both within (NOTIFY); then the last of all gateways polling through them sees it."""
    ports = [free_port(), free_port()]
    procs = [_serve(url, data / f"w{i}", p, 1) for i, p in enumerate(ports)]
    engine = create_engine(url)
    try:
        etags = [asyncio.run(_etags(p, tokens)) for p in ports]
        probe = next(iter(tokens))
        rounds = []
        for n in range(3 if quick() else 5):
            version = f"2.{n}.0"
            publish(engine, data, _variant(bundle, version, root / f"v{version}", key), [pub])
            seen: list[float] = []

            def watch(port: int, etag: str, seen: list[float] = seen) -> None:
                with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as c:
                    while True:
                        r = c.get(f"/api/v1/gateways/{probe}/desired", headers={
                            "Authorization": f"Bearer {tokens[probe]}", "If-None-Match": etag})
                        if r.status_code == 200:
                            seen.append(time.perf_counter())
                            return

            current = [e[probe] for e in etags]
            watchers = [threading.Thread(target=watch, args=(p, current[i])) for i, p in enumerate(ports)]
            for w in watchers:
                w.start()
            t0 = time.perf_counter()
            deploy(engine, MODEL, version, "group:fleet", "immediate")  # what `edge-hub deploy` runs
            committed = time.perf_counter()
            for w in watchers:
                w.join(30)
            rounds.append(max(seen) - committed)
            last = asyncio.run(_until_all_changed(ports, tokens, etags))
            emit(bench="fleet_deploy", round=n, gateways=len(tokens), deploy_call_s=round(committed - t0, 3),
                 every_worker_s=round(max(seen) - committed, 3), last_gateway_s=round(last - committed, 2))
        emit(bench="fleet_deploy_summary", worst_every_worker_s=round(max(rounds), 3),
             median_every_worker_s=round(statistics.median(rounds), 3), target_s=1.0)
    finally:
        engine.dispose()
        for p in procs:
            _stop(p)


async def _until_all_changed(ports: list[int], tokens: dict[str, str], etags: list[dict[str, str]]) -> float:
    """Every gateway polls (half through each worker) until its state changed, over CONNECTIONS
    connections each with its own share of the gateways; when the last one saw it."""
    last = 0.0
    gws = list(tokens)

    async def worker(k: int) -> None:
        nonlocal last
        w = k % len(ports)
        pending = gws[k::CONNECTIONS]
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[w]}", timeout=30,
                                     limits=httpx.Limits(max_connections=1)) as c:
            while pending:
                still = []
                for gw in pending:
                    r = await c.get(f"/api/v1/gateways/{gw}/desired", headers={
                        "Authorization": f"Bearer {tokens[gw]}", "If-None-Match": etags[w][gw]})
                    if r.status_code == 200:
                        last = max(last, time.perf_counter())
                        for e in etags:
                            e[gw] = r.headers["etag"]
                    else:
                        still.append(gw)
                pending = still

    await asyncio.gather(*(worker(k) for k in range(CONNECTIONS)))
    return last


def race_figures(url: str, data: Path, root: Path, tokens: dict[str, str], sha: str) -> None:
    """20 races of 20 trigger evaluations and 20 of 20 rollout evaluations, at once, on two job
    workers (each 2 at a time), with 50 ms between each decision's read and write."""
    env = {**os.environ, "EDGE_HUB_SLOW_AT": "retrain_trigger_judged:0.05,rollout_judged:0.05"}
    workers = [subprocess.Popen([sys.executable, "-m", "hub", "worker", "--db", url, "--data",
                                 str(data / f"job{i}"), "--concurrency", "2"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
               for i in range(2)]
    engine = create_engine(url)
    queue = HubQueue(JobContext(engine, root / "bench-side"))
    gws = list(tokens)
    try:
        _wait_workers(engine, 2)
        _retrain_ready(engine, url, tokens, gws[0])
        retrains, promotions = [], []
        for race in range(RACES):
            with Session(engine) as s, s.begin():  # the trigger re-armed: no retrain yet
                s.get(ModelPolicy, MODEL).state = {}  # type: ignore[union-attr]
            before = _count(engine, RetrainRun, RetrainRun.status != "skipped")
            _race(queue, "evaluate_triggers")
            _settle(engine)
            retrains.append(_count(engine, RetrainRun, RetrainRun.status != "skipped") - before)

            group = f"race{race}"
            with Session(engine) as s, s.begin():
                for g in gws[100 + race * 4:104 + race * 4]:
                    s.get(Gateway, g).group = group  # type: ignore[union-attr]
            deploy(engine, MODEL, "1", f"group:{group}", "canary", RolloutPolicy(1, 0.0, 0, 0.0))
            before = _count(engine, HistoryEntry, HistoryEntry.event == "promoted")
            _report_canary(engine, group, sha)
            _race(queue, "evaluate_rollouts")
            _settle(engine)
            promotions.append(_count(engine, HistoryEntry, HistoryEntry.event == "promoted") - before)
        emit(bench="fleet_races", races=RACES, evaluations_per_race=20, job_workers=2,
             retrains_per_race=retrains, promotions_per_race=promotions,
             duplicated_retrains=sum(max(0, n - 1) for n in retrains),
             duplicated_promotions=sum(max(0, n - 1) for n in promotions),
             missed=sum(n == 0 for n in retrains + promotions), last_trigger=_last_reason(engine))
    finally:
        queue.close()
        engine.dispose()
        for w in workers:
            _stop(w)


def _last_reason(engine: Engine) -> str:
    with Session(engine) as s:
        row = s.get(ModelPolicy, MODEL)
        runs = [(r.status, (r.detail or {}).get("error", "")[:120]) for r in
                s.scalars(select(RetrainRun).where(RetrainRun.status != "skipped").limit(2))]
        return f"{(row.state or {}).get('last_reason') if row else None}; runs {runs}"


def _report_canary(engine: Engine, group: str, sha: str) -> None:
    """The canary of the group's rollout reports the version active (as its agent would)."""
    from hub.storage import GatewayStatus

    with Session(engine) as s, s.begin():
        dep = s.scalars(select(Deployment).where(Deployment.target == f"group:{group}")
                        .order_by(Deployment.id.desc())).first()
        assert dep is not None and dep.canary, "a canary rollout"
        report = {"active": {"name": MODEL, "version": dep.version, "sha256": sha, "since": 1.0},
                  "metrics": {}, "alarms": []}
        row = s.get(GatewayStatus, dep.canary[0])
        if row is None:
            s.add(GatewayStatus(gateway_id=dep.canary[0], report=report, updated=time.time()))
        else:
            row.report, row.updated = report, time.time()


def _retrain_ready(engine: Engine, url: str, tokens: dict[str, str], gw: str) -> None:
    """A model whose trigger holds: labelled samples, a slipping status report, a trainer that
    fails at once (the race is about how many runs start, not what they train)."""
    from agent.demo.sim.process import PROCESS_TAGS, DriftStep, LineProcess
    from hub.limits import HubLimits
    from hub.storage import GatewayStatus, store_batch

    proc = LineProcess(seed=11, drift=[DriftStep("concept", 0.0)])
    now = time.time() - 800 * 30
    samples = []
    for i in range(800):
        values, ok = proc.part(i * 30.0)
        samples.append({"id": f"p{i}", "ts": now + i * 30, "model": MODEL, "inputs": PROCESS_TAGS,
                        "x": [values[t] for t in PROCESS_TAGS], "predicted": "OK",
                        "label": "OK" if ok else "NOK", "version": "1", "bundle_sha256": "x", "hard": not ok})
    store_batch(engine, gw, [{"seq": 10_000 + i, "kind": "training_samples", "items": 100,
                              "created": time.time(), "payload": encode_json(samples[k:k + 100])}
                             for i, k in enumerate(range(0, 800, 100))], HubLimits())
    monitor = {"rolling_accuracy": 0.80, "rolling_balanced_accuracy": 0.5, "rolling_cost_per_part": 1.5,
               "rolling_per_class": {"NOK": {"support": 30, "recall": 0.0, "precision": None},
                                     "OK": {"support": 170, "recall": 1.0, "precision": 0.85}}}
    with Session(engine) as s, s.begin():
        s.add(GatewayStatus(gateway_id=gw, updated=time.time(), report={
            "active": {"name": MODEL, "version": "1", "sha256": "x", "since": 1.0},
            "metrics": {"monitor": monitor}, "alarms": []}))
    set_policy(engine, MODEL, {"balanced_accuracy_below": 0.8, "sustain_s": 0, "min_interval_s": 3600,
                               "lookback_s": 86400, "min_rows": 100, "trainer": {"command": ["false"]}})


def _race(queue: HubQueue, task: str, n: int = 20) -> None:
    go = threading.Barrier(n)

    def one() -> None:
        go.wait()
        queue.defer(task)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def _settle(engine: Engine, within_s: float = 60.0) -> None:
    """Until no evaluation waits or runs and no retrain is queued or running."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            busy = conn.execute(text(
                "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing') "
                "AND task_name IN ('hub.evaluate_triggers', 'hub.evaluate_rollouts', 'hub.retrain')"
            )).scalar_one()
            runs = conn.execute(text(
                "SELECT count(*) FROM retrain_runs WHERE status IN ('queued', 'running')")).scalar_one()
        if not busy and not runs:
            return
        time.sleep(0.1)
    raise RuntimeError("the race did not settle")


def _count(engine: Engine, table: Any, where: Any) -> int:
    with Session(engine) as s:
        return int(s.scalar(select(func.count()).select_from(table).where(where)) or 0)


def _wait_workers(engine: Engine, n: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with engine.connect() as conn:
            if conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one() >= n:
                return
        time.sleep(0.2)
    raise RuntimeError("job workers did not start")


def main() -> None:
    use_all_cores()
    seconds = 3.0 if quick() else 10.0
    n = 1000 if quick() else 5000
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        emit(bench="fleet", skipped=f"PostgreSQL not reachable: {str(exc).splitlines()[0]}")
        return
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    root = scratch_dir("bench-fleet-")
    try:
        bundle, pub, _ = trained_bundle()
        engine = open_db(url)
        tokens = _gateways(engine, n)
        add_admin_token(engine)
        published = publish(engine, root / "data", bundle, [pub])
        deploy(engine, MODEL, "1", "group:fleet", "immediate")
        engine.dispose()
        parts = os.environ.get("BENCH_FLEET_PARTS", "polls,deploy,races").split(",")
        if "polls" in parts:
            poll_figures(url, root / "data", tokens, seconds, 3 if quick() else 5)
        if "deploy" in parts:
            deploy_figures(url, root / "data", tokens, bundle, bundle.parent / "k.pem", pub, root)
        if "races" in parts:
            race_figures(url, root / "data", root, tokens, published.sha256)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    main()
