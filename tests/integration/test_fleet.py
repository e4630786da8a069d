"""A hub of several machines on one PostgreSQL: three `edge-hub serve` API workers and two
`edge-hub worker` job workers, each a process of its own with its own DATA directory, racing
on one schema. Tokens revoked and deployments made reach every API worker within a second
(LISTEN/NOTIFY); bundles published through one download through another with Range (bytes in
PostgreSQL); 20 simultaneous trigger evaluations start one retrain and 20 rollout evaluations
promote a canary once; a job worker killed mid-retrain publishes nothing half-way and its job
is done again by the other; retention drops whole old partitions and nothing newer; bad job
payloads, queue names and retention settings are refused with the reason, changing nothing."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import signal
import sys
import tarfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.cli import main as hub_main
from hub.fleet import retention
from hub.fleet.jobs import JobContext, queue_run
from hub.fleet.queue import HubQueue
from hub.limits import HubLimits
from hub.retrain import set_policy
from hub.storage import (
    Deployment,
    HistoryEntry,
    ModelVersion,
    RetrainRun,
    TrainingSample,
    add_admin_token,
    add_gateway,
    migrate,
    rotate_token,
    store_batch,
)
from tests.conftest import PG_URL
from tests.helpers.fleet import Fleet, Proc
from tests.integration.test_retrain import MODEL, samples_after_concept_change, upload

API_QUEUES = ["triggers", "rollouts", "audit", "retention"]  # the job workers alone retrain


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, trained: dict[str, Path]) -> Iterator[dict[str, Any]]:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:
        if os.environ.get("EDGE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {str(exc).splitlines()[0]}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    migrate(engine)
    root = tmp_path_factory.mktemp("fleet")
    # a decision read and its write 0.3 s apart: without the hub-wide locks, the racing
    # evaluations would all decide the same thing (tested: they then start several retrains)
    f = Fleet(url, root, release_pub=trained["pub"],
              env={"EDGE_HUB_SLOW_AT": "retrain_trigger_judged:0.3,rollout_judged:0.3"})
    apis = [f.serve("--queues", *API_QUEUES) for _ in range(3)]
    workers = [f.worker("--concurrency", "2") for _ in range(2)]
    queue = HubQueue(JobContext(engine, root / "test-side"))
    try:
        f.wait_ready(engine, queue_workers=5)
        yield {"engine": engine, "url": url, "fleet": f, "apis": apis, "workers": workers,
               "queue": queue, "admin": add_admin_token(engine, "ops"), "root": root}
    finally:
        queue.close()
        f.stop()
        engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def published(fleet: dict[str, Any], trained: dict[str, Path]) -> dict[str, Any]:
    """The trained bundle published through API worker 0 (its bytes go to PostgreSQL)."""
    archive = fleet["root"] / "bundle.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(trained["bundle"], arcname="bundle")
    r = httpx.post(f"{fleet['apis'][0].url}/api/v1/models", content=archive.read_bytes(),
                   headers={**bearer(fleet["admin"]), "Content-Type": "application/x-tar"}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def poll(api: Proc, gateway: str, token: str, etag: str | None = None) -> httpx.Response:
    headers = {**bearer(token), **({"If-None-Match": etag} if etag else {})}
    return httpx.get(f"{api.url}/api/v1/gateways/{gateway}/desired", headers=headers, timeout=5)


def until(condition: Any, within_s: float, what: str, step_s: float = 0.01) -> float:
    """Seconds until ``condition()`` held; fails after ``within_s``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > within_s:
            raise AssertionError(f"not within {within_s} s: {what}")
        time.sleep(step_s)
    return time.monotonic() - start


def test_a_revoked_token_is_refused_by_every_api_worker_within_a_second(fleet: dict[str, Any]) -> None:
    engine, apis = fleet["engine"], fleet["apis"]
    token = add_gateway(engine, "gw-rev")
    for api in apis:  # each worker has it cached now (a known token is kept 30 s)
        assert poll(api, "gw-rev", token).status_code == 200
        assert poll(api, "gw-rev", token).status_code == 200
    new = rotate_token(engine, "gw-rev")  # what `edge-hub gateways token` does, on the shared database
    revoked_at = time.monotonic()
    for api in apis:
        until(lambda api=api: poll(api, "gw-rev", token).status_code == 401, 5, f"{api.url} refuses it")
    assert time.monotonic() - revoked_at < 1.0, "a revoked token worked for more than a second"
    assert all(poll(api, "gw-rev", new).status_code == 200 for api in apis)


def test_a_deployment_through_one_worker_is_served_by_the_others_and_its_bundle_with_range(
        fleet: dict[str, Any], published: dict[str, Any], trained: dict[str, Path]) -> None:
    engine, apis = fleet["engine"], fleet["apis"]
    token = add_gateway(engine, "gw-dep", group="dep")
    etags = {api.url: poll(api, "gw-dep", token).headers["ETag"] for api in apis}
    assert all(poll(api, "gw-dep", token, etags[api.url]).status_code == 304 for api in apis)
    r = httpx.post(f"{apis[0].url}/api/v1/deployments", headers=bearer(fleet["admin"]), timeout=10,
                   json={"model": MODEL, "version": "1.0.0", "to": "group:dep"})
    assert r.status_code == 201, r.text
    deployed_at = time.monotonic()
    for api in apis[1:]:
        until(lambda api=api: poll(api, "gw-dep", token, etags[api.url]).status_code == 200, 5,
              f"{api.url} serves the deployment")
    took = time.monotonic() - deployed_at
    assert took < 1.0, f"the deployment reached the other workers after {took:.2f} s"
    desired = poll(apis[2], "gw-dep", token).json()
    assert desired["model"]["version"] == "1.0.0" and desired["model"]["sha256"] == published["sha256"]

    # the bundle: published through worker 0, its file is in no other worker's DATA
    other = apis[2]
    assert not (other.data / "bundles" / f"{published['sha256']}.tar").exists()
    url = f"{other.url}{desired['model']['url']}"
    whole = httpx.get(url, headers=bearer(token), timeout=30)
    assert whole.status_code == 200 and int(whole.headers["Content-Length"]) == desired["model"]["size"]
    assert hashlib.sha256(whole.content).hexdigest() == desired["model"]["archive_sha256"]
    size = len(whole.content)
    for first, last in ((0, 99), (1000, 1_500_000), (size - 10, size - 1)):
        part = httpx.get(url, headers={**bearer(token), "Range": f"bytes={first}-{last}"}, timeout=30)
        assert part.status_code == 206, (first, last, part.status_code)
        end = min(last, size - 1)
        assert part.headers["Content-Range"] == f"bytes {first}-{end}/{size}"
        assert part.content == whole.content[first:end + 1]
    tail = httpx.get(url, headers={**bearer(token), "Range": "bytes=-16"}, timeout=30)
    assert tail.status_code == 206 and tail.content == whole.content[-16:]
    beyond = httpx.get(url, headers={**bearer(token), "Range": f"bytes={size}-"}, timeout=30)
    assert beyond.status_code == 416 and beyond.headers["Content-Range"] == f"bytes */{size}"
    stranger = add_gateway(engine, "gw-nodep")  # not deployed to it: refused as on one machine
    assert httpx.get(url, headers=bearer(stranger), timeout=10).status_code == 403


def runs(engine: Engine, model: str = MODEL) -> list[RetrainRun]:
    with Session(engine) as s:
        q = select(RetrainRun).where(RetrainRun.model == model, RetrainRun.status != "skipped")
        out = list(s.scalars(q.order_by(RetrainRun.id)))
        s.expunge_all()
        return out


def history(engine: Engine, event: str, model: str = MODEL) -> list[HistoryEntry]:
    with Session(engine) as s:
        out = list(s.scalars(select(HistoryEntry).where(HistoryEntry.event == event,
                                                        HistoryEntry.model == model)))
        s.expunge_all()
        return out


def jobs_left(engine: Engine, task: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(status): int(n) for status, n in conn.execute(text(
            "SELECT status::text, count(*) FROM procrastinate_jobs WHERE task_name = :t GROUP BY 1"),
            {"t": task})}


def race(queue: HubQueue, task: str, n: int = 20) -> None:
    """``n`` jobs of ``task`` deferred at the same moment from ``n`` threads."""
    go = threading.Barrier(n)

    def one() -> None:
        go.wait()
        queue.defer(task)

    threads = [threading.Thread(target=one) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)


def test_twenty_simultaneous_trigger_evaluations_start_one_retrain(
        fleet: dict[str, Any], published: dict[str, Any]) -> None:
    engine, apis = fleet["engine"], fleet["apis"]
    token = add_gateway(engine, "gw-a", group="press")
    r = httpx.post(f"{apis[1].url}/api/v1/deployments", headers=bearer(fleet["admin"]), timeout=10,
                   json={"model": MODEL, "version": "1.0.0", "to": "group:press"})
    assert r.status_code == 201, r.text
    upload(apis[2], token, "gw-a", samples_after_concept_change(700), 1)  # labelled; NOK missed
    assert runs(engine) == []
    set_policy(engine, MODEL, {"balanced_accuracy_below": 0.8, "sustain_s": 0, "min_interval_s": 3600,
                               "lookback_s": 86400, "strategy": "immediate", "margin": 0.02,
                               "min_rows": 100})
    race(fleet["queue"], "evaluate_triggers")  # and every worker's periodic evaluation besides
    until(lambda: jobs_left(engine, "hub.evaluate_triggers").get("todo", 0) == 0 and
          jobs_left(engine, "hub.evaluate_triggers").get("doing", 0) == 0, 60, "the 20 evaluations ran")
    assert jobs_left(engine, "hub.evaluate_triggers").get("failed", 0) == 0
    until(lambda: bool(runs(engine)) and runs(engine)[-1].status not in ("queued", "running"), 180,
          "the retrain finished")
    done = runs(engine)
    assert len(done) == 1, [(r.id, r.status, r.trigger) for r in done]
    assert done[0].status == "deployed", done[0].detail
    assert len(history(engine, "retrain_started")) == 1
    with Session(engine) as s:
        assert sorted(s.scalars(select(ModelVersion.version).where(ModelVersion.name == MODEL))) == \
            ["1.0.0", "1.1.0"]
    # the dataset snapshot was taken by a job worker: every machine reads it from PostgreSQL
    dataset = done[0].detail["dataset_sha256"]
    with engine.connect() as conn:
        keys = set(conn.execute(text("SELECT key FROM artifacts WHERE kind = 'dataset'")).scalars())
    assert {f"datasets/{dataset}/{n}" for n in ("train.csv", "holdout.csv", "meta.json")} <= keys


def test_one_promotion_per_rollout_step_whatever_the_number_of_workers(
        fleet: dict[str, Any], published: dict[str, Any]) -> None:
    engine, apis = fleet["engine"], fleet["apis"]
    tokens = {g: add_gateway(engine, g, group="cast") for g in ("gw-c1", "gw-c2", "gw-c3")}
    before = len(history(engine, "promoted"))
    r = httpx.post(f"{apis[0].url}/api/v1/deployments", headers=bearer(fleet["admin"]), timeout=10,
                   json={"model": MODEL, "version": "1.0.0", "to": "group:cast", "strategy": "canary",
                         "canary_size": 1, "watch_s": 0.0})
    assert r.status_code == 201, r.text
    with Session(engine) as s:
        dep = s.scalars(select(Deployment).where(Deployment.target == "group:cast")).one()
        canary = dep.canary[0]
    race(fleet["queue"], "evaluate_rollouts")  # nothing to decide yet: the canary has not reported
    status = {"active": {"name": MODEL, "version": "1.0.0", "sha256": published["sha256"], "since": 1.0},
              "metrics": {}, "alarms": []}
    # the canary's report through one worker, then 20 evaluations at once on five workers (and
    # their periodic ones)
    r = httpx.post(f"{apis[1].url}/api/v1/gateways/{canary}/status", headers=bearer(tokens[canary]),
                   content=json.dumps(status), timeout=10)
    assert r.status_code == 200, r.text
    race(fleet["queue"], "evaluate_rollouts")
    until(lambda: len(history(engine, "promoted")) > before, 30, "the canary promoted")
    until(lambda: not {"todo", "doing"} & set(jobs_left(engine, "hub.evaluate_rollouts")), 60,
          "the evaluations ran")
    promoted = history(engine, "promoted")
    assert len(promoted) == before + 1, [h.detail for h in promoted]
    others = [g for g in tokens if g != canary]
    desired = poll(apis[2], others[0], tokens[others[0]]).json()
    assert desired["model"]["version"] == "1.0.0"


SLOW_TRAINER = '''
import os, sys, time
marker = sys.argv[1]
with open(marker, "a") as fh:
    fh.write(f"{os.getppid()} {os.getpid()}\\n")
with open(marker) as fh:
    attempt = len(fh.read().splitlines())
if attempt == 1:
    time.sleep(120)  # the first attempt's worker is killed while this runs
os.execv(sys.executable, [sys.executable, "-m", "hub.trainer", *sys.argv[2:]])
'''


def test_a_job_worker_killed_mid_retrain_publishes_nothing_and_its_job_runs_again(
        fleet: dict[str, Any], published: dict[str, Any], versions: dict[str, Path],
        trained: dict[str, Path]) -> None:
    engine, f, queue = fleet["engine"], fleet["fleet"], fleet["queue"]
    if not runs(engine):  # alone: the model needs its gateway, samples and a deployment
        test_twenty_simultaneous_trigger_evaluations_start_one_retrain(fleet, published)
    # a weak champion (2.0.0), so that the challenger is better and is published
    archive = fleet["root"] / "weak.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(versions["2.0.0"], arcname="bundle")
    r = httpx.post(f"{fleet['apis'][0].url}/api/v1/models", content=archive.read_bytes(),
                   headers={**bearer(fleet["admin"]), "Content-Type": "application/x-tar"}, timeout=60)
    assert r.status_code == 201, r.text
    r = httpx.post(f"{fleet['apis'][0].url}/api/v1/deployments", headers=bearer(fleet["admin"]),
                   json={"model": MODEL, "version": "2.0.0", "to": "group:press"}, timeout=10)
    assert r.status_code == 201, r.text
    script = fleet["root"] / "slow_trainer.py"
    script.write_text(SLOW_TRAINER)
    marker = fleet["root"] / "attempts.txt"
    set_policy(engine, MODEL, {"trainer": {"command": [sys.executable, str(script), str(marker)]}})
    with Session(engine) as s:
        versions_before = sorted(s.scalars(select(ModelVersion.version).where(ModelVersion.name == MODEL)))
    run_id = queue.defer_retrain(MODEL, "test: a worker dies during the run")
    assert run_id is not None
    until(lambda: marker.exists() and marker.read_text().strip() != "", 60, "the trainer started")
    worker_pid, trainer_pid = map(int, marker.read_text().split())
    assert worker_pid in {w.pid for w in fleet["workers"]}, "a job worker runs the retrain"
    killed = f.kill(worker_pid)
    os.kill(trainer_pid, signal.SIGKILL)  # its orphaned trainer too (it would only sleep on)
    with Session(engine) as s:
        mid = s.get(RetrainRun, run_id)
        assert mid is not None and mid.status == "running"
        assert sorted(s.scalars(select(ModelVersion.version).where(ModelVersion.name == MODEL))) == \
            versions_before  # nothing published half-way
    # the other worker finds the job of the silent worker and runs it again, from its start
    until(lambda: len(marker.read_text().splitlines()) == 2, 90, "the job ran again")
    until(lambda: runs(engine)[-1].status not in ("queued", "running"), 180, "the retried run finished")
    done = next(r for r in runs(engine) if r.id == run_id)
    assert done.status == "deployed", done.detail
    second_worker = int(marker.read_text().splitlines()[1].split()[0])
    assert second_worker != worker_pid and second_worker in {w.pid for w in fleet["workers"]}
    with Session(engine) as s:
        after = sorted(s.scalars(select(ModelVersion.version).where(ModelVersion.name == MODEL)))
    assert len(after) == len(versions_before) + 1  # exactly one version from the run, whole
    assert done.version in after
    f.restart(killed)
    set_policy(engine, MODEL, {"trainer": "gbt"})


def test_retention_drops_old_partitions_and_nothing_newer(fleet: dict[str, Any],
                                                         published: dict[str, Any]) -> None:
    engine, url = fleet["engine"], fleet["url"]
    add_gateway(engine, "gw-old")
    now = time.time()
    ages = [45, 40, 31, 29, 2, 0]  # days
    for age in ages[:3]:
        retention.ensure_partitions(engine, now=now - age * 86400, ahead=0)
    rows = [{"seq": i + 1, "kind": "inference", "items": 1, "created": now - age * 86400 - 60,
             "payload": b"{}"} for i, age in enumerate(ages)]
    rows.append({"seq": 99, "kind": "inference", "items": 1, "created": now - 4000 * 86400,
                 "payload": b"{}"})  # a wrong clock: the default partition
    store_batch(engine, "gw-old", rows, HubLimits())
    with engine.connect() as conn:
        days_before = retention.partitions(conn)
        assert conn.execute(text("SELECT count(*) FROM telemetry_default")).scalar_one() >= 1
    assert hub_main(["retention", "set", "telemetry=30", "samples=10", "--db", url]) == 0
    card = httpx.get(f"{fleet['apis'][1].url}/api/v1/models/{MODEL}/1.0.0/card", timeout=10,
                     headers=bearer(fleet["admin"]))
    assert card.status_code == 200 and "labelled samples 10 days (since " in card.text  # says its period
    with Session(engine) as s:
        s.add(TrainingSample(model="x", gateway_id="gw-old", sample_id="old", ts=now - 20 * 86400,
                             inputs=["a"], x=[1.0], label="OK", version="1", received=now - 20 * 86400))
        s.add(TrainingSample(model="x", gateway_id="gw-old", sample_id="new", ts=now, inputs=["a"],
                             x=[1.0], label="OK", version="1", received=now))
        s.commit()
    assert hub_main(["retention", "run", "--db", url]) == 0
    with engine.connect() as conn:
        left = retention.partitions(conn)
        kept = sorted(conn.execute(text(
            "SELECT seq FROM telemetry WHERE gateway_id = 'gw-old'")).scalars())
    cut_day = int((now - 30 * 86400) // 86400)
    dropped = {n for n, d in days_before.items() if d < cut_day}
    assert dropped and not (dropped & set(left))  # every whole day older than 30 days went
    assert {n for n, d in days_before.items() if d >= cut_day} <= set(left)  # nothing newer
    assert kept == [4, 5, 6]  # 29, 2 and 0 days old stay; 45, 40, 31 and the 4000-day-old go
    with Session(engine) as s:
        assert list(s.scalars(select(TrainingSample.sample_id).where(TrainingSample.model == "x"))) == ["new"]
    assert retention.get(engine)["audit"] == retention.DEFAULTS["audit"]  # its own policy, untouched


@pytest.mark.parametrize("setting", ["telemetry=0", "telemetry=-3", "samples=abc", "logs=5", "audit"])
def test_bad_retention_settings_are_refused_and_change_nothing(
        fleet: dict[str, Any], setting: str, capsys: pytest.CaptureFixture[str]) -> None:
    before = retention.get(fleet["engine"])
    assert hub_main(["retention", "set", setting, "--db", fleet["url"]]) == 2
    err = capsys.readouterr().err
    assert setting in err and ("KIND=DAYS" in err or "at least 1 day" in err or "whole number" in err)
    assert retention.get(fleet["engine"]) == before


def test_an_unknown_queue_is_refused_with_the_known_ones(
        fleet: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    assert hub_main(["worker", "--queues", "retrain", "retrian", "--db", fleet["url"]]) == 2
    err = capsys.readouterr().err
    assert "unknown queue 'retrian'" in err and "triggers, retrain, rollouts, audit, retention" in err
    assert hub_main(["serve", "--queues", "nope", "--db", fleet["url"]]) == 2


def test_a_job_for_a_model_that_no_longer_exists_fails_with_its_reason_and_touches_nothing(
        fleet: dict[str, Any]) -> None:
    engine, queue = fleet["engine"], fleet["queue"]

    def counts() -> tuple[int, int, int]:
        with Session(engine) as s:
            return (s.scalar(select(func.count()).select_from(ModelVersion)) or 0,
                    s.scalar(select(func.count()).select_from(Deployment)) or 0,
                    s.scalar(select(func.count()).select_from(TrainingSample)) or 0)

    before = counts()
    ghost_run = queue_run(engine, "ghost-model", "a trigger of a model removed since")
    ghost = queue.defer("retrain", model="ghost-model", run_id=ghost_run)
    unknown = queue.defer("retrain", model=MODEL, run_id=987654)

    def status(job: int) -> str | None:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT status::text FROM procrastinate_jobs WHERE id = :i"),
                                 {"i": job}).scalar()
            return None if found is None else str(found)

    until(lambda: status(ghost) == "failed" and status(unknown) == "failed", 60, "both jobs failed")
    with Session(engine) as s:
        run = s.get(RetrainRun, ghost_run)
        assert run is not None and run.status == "failed"
        assert "ghost-model no longer exists" in run.detail["error"]
    reasons = [h.detail or "" for h in history(engine, "job_failed", "ghost-model")]
    assert any("ghost-model no longer exists" in r for r in reasons)
    assert any("no retrain run 987654" in (h.detail or "") for h in history(engine, "job_failed"))
    assert counts() == before


def test_the_hub_metrics_count_polls_jobs_and_the_queue(fleet: dict[str, Any]) -> None:
    engine, apis = fleet["engine"], fleet["apis"]
    token = add_gateway(engine, "gw-metrics")
    etag = poll(apis[0], "gw-metrics", token).headers["ETag"]
    for _ in range(5):
        assert poll(apis[0], "gw-metrics", token, etag).status_code == 304
    scraped: dict[str, Any] = {}

    def scrape() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        scraped["body"] = httpx.get(f"{apis[0].url}/metrics", timeout=10).text
        return {(s.name, tuple(sorted(s.labels.items()))): s.value
                for fam in text_string_to_metric_families(scraped["body"]) for s in fam.samples}

    def ran_rollouts() -> bool:
        return any(name == "edge_hub_jobs_total" and dict(labels).get("task") == "rollouts"
                   for name, labels in scrape())

    # this worker works the rollouts queue: the periodic job (every second) goes to whichever of
    # the five queue workers takes it first, so worker 0's first one may take a few seconds
    until(ran_rollouts, 60, "API worker 0 ran a rollouts job", step_s=0.5)
    samples = scrape()
    body = scraped["body"]
    assert samples[("edge_hub_polls_total", (("result", "304"),))] >= 5
    assert samples[("edge_hub_polls_total", (("result", "200"),))] >= 1
    assert any(name == "edge_hub_job_seconds_count" for name, _ in samples)
    names = {fam.name for fam in text_string_to_metric_families(body)}
    assert {"edge_hub_job_queue", "edge_hub_ingested_records", "edge_hub_requests_seconds"} <= names


def test_telemetry_resent_after_midnight_is_stored_once(fleet: dict[str, Any]) -> None:
    """The partitioned table's unique key holds the record's own time: a resend is a duplicate."""
    engine = fleet["engine"]
    add_gateway(engine, "gw-resend")
    body = [{"seq": 1, "kind": "inference", "items": 3, "created": time.time() - 86400 - 5,
             "payload": gzip.compress(b"{}")}]
    assert store_batch(engine, "gw-resend", body, HubLimits()).stored == 1
    assert store_batch(engine, "gw-resend", body, HubLimits()).stored == 0


def test_serve_workers_2_shares_one_port_and_sums_its_metrics(fleet: dict[str, Any], tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    engine, f = fleet["engine"], fleet["fleet"]
    token = add_gateway(engine, "gw-two")
    two = f.serve("--no-jobs", workers=2)
    try:
        f.wait_ready(engine, queue_workers=5)
        etag = poll(two, "gw-two", token).headers["ETag"]
        for _ in range(40):  # a new connection each: the kernel hands them to either worker
            r = poll(two, "gw-two", token, etag)
            assert r.status_code == 304
        sums = set()
        for _ in range(10):
            body = httpx.get(f"{two.url}/metrics", timeout=10).text
            polls = {s.labels["result"]: s.value for fam in text_string_to_metric_families(body)
                     for s in fam.samples if s.name == "edge_hub_polls_total"}
            sums.add(polls.get("304", 0.0))
        assert polls["304"] == 40 and polls["200"] == 1  # the same sum, whichever worker answered
        assert sums == {40.0}
        kids = {p.pid for p in psutil.Process(two.pid).children(recursive=True)}
        assert len(kids) >= 2, "two worker processes"
    finally:
        assert two.popen is not None
        two.popen.terminate()
        two.popen.wait(20)
        f.procs.remove(two)
    sqlite = f"sqlite:///{tmp_path / 'one.db'}"
    assert hub_main(["serve", "--workers", "2", "--db", sqlite, "--data", str(tmp_path / "d")]) == 2
    assert "needs PostgreSQL" in capsys.readouterr().err


def test_a_retried_run_that_had_published_finishes_without_training_another_version(
        fleet: dict[str, Any]) -> None:
    """The window between a run's publish and its rollout: the worker died there (the run is
    still `running`, its version is registered whole). The retried job does not train and
    publish a second version; the run fails naming the version and what to do."""
    engine, queue = fleet["engine"], fleet["queue"]
    trigger = "test: a worker died after publishing"
    run_id = queue_run(engine, MODEL, trigger)
    with Session(engine) as s, s.begin():
        run = s.get(RetrainRun, run_id)
        assert run is not None
        run.status = "running"  # as the dead worker left it
        s.add(ModelVersion(name=MODEL, version="7.7.7", sha256=hashlib.sha256(trigger.encode()).hexdigest(),
                           manifest={"lineage": {"trigger": trigger}}, created=time.time()))
    with Session(engine) as s:
        versions_before = s.scalar(select(func.count()).select_from(ModelVersion)) or 0
        deployments_before = s.scalar(select(func.count()).select_from(Deployment)) or 0
    queue.defer("retrain", model=MODEL, run_id=run_id)

    def done() -> RetrainRun | None:
        with Session(engine) as s:
            r = s.get(RetrainRun, run_id)
            return r if r is not None and r.status not in ("queued", "running") else None

    until(lambda: done() is not None, 60, "the retried run finished")
    finished = done()
    assert finished is not None and finished.status == "failed" and finished.version == "7.7.7"
    assert "stopped after publishing moulding-nok 7.7.7" in finished.detail["error"]
    with Session(engine) as s:
        assert (s.scalar(select(func.count()).select_from(ModelVersion)) or 0) == versions_before
        assert (s.scalar(select(func.count()).select_from(Deployment)) or 0) == deployments_before
