"""The hub as its own process (edge-hub serve --db URL --data DIR): decompression bombs against
it with its peak memory measured, and kill -9 between a telemetry insert and its ingest with the
training samples complete after the resend."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.demo.sim.broker import free_port
from agent.hublink.uploader import batch_body
from agent.models.bundle import generate_keypair
from agent.store.outbox import StoredRecord
from hub.storage import Telemetry, TrainingSample, add_admin_token, add_gateway

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class HubProcess:
    def __init__(self, db_url: str, data: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        # the documented contract: options after the command
        self.args = [
            sys.executable,
            "-m",
            "hub",
            "serve",
            "--db",
            db_url,
            "--data",
            str(data),
            "--port",
            str(self.port),
            "--log-level",
            "warning",
        ]
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/openapi.json", timeout=0.5)
                return
            except httpx.HTTPError:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode()[-2000:] if self.proc.stderr else ""
                    raise AssertionError(f"hub exited: {err}") from None
                time.sleep(0.1)
        raise AssertionError("hub process did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stderr(self) -> str:
        assert self.proc is not None and self.proc.stderr is not None
        self.proc.terminate()
        self.proc.wait(10)
        return self.proc.stderr.read().decode(errors="replace")


@pytest.fixture()
def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


class PeakRss:
    """Samples a process's resident memory every few ms (psutil) while a block runs."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(0.002)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def gzip_bomb(inflated: int, chunk: bytes = b"\0" * (1 << 20)) -> bytes:
    """gzip of ``inflated`` bytes made without holding them."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    out = [c.compress(chunk) for _ in range(inflated // len(chunk))]
    return b"".join(out) + c.flush()


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left)
        b[:n] = b"\0" * n
        self.left -= n
        return n

    def readable(self) -> bool:
        return True


def tar_gz_bomb(inflated: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        info = tarfile.TarInfo("bundle/model.onnx")
        info.size = inflated
        tar.addfile(info, io.BufferedReader(_Zeros(inflated)))
        manifest = json.dumps({"name": "bomb"}).encode()
        info = tarfile.TarInfo("bundle/manifest.json")
        info.size = len(manifest)
        tar.addfile(info, io.BytesIO(manifest))
    return buf.getvalue()


def test_decompression_bombs_leave_the_hub_under_100_mb(engine: Engine, db_url: str, tmp_path: Path) -> None:
    token = add_gateway(engine, "gw")
    admin = add_admin_token(engine, "ops")
    (tmp_path / "data" / "trusted-keys").mkdir(parents=True)
    generate_keypair(tmp_path / "k.pem", tmp_path / "data" / "trusted-keys" / "k.pub")  # publish may run
    hub = HubProcess(db_url, tmp_path / "data")
    hub.start()
    try:
        assert hub.proc is not None
        with httpx.Client(base_url=hub.url, timeout=60) as c:
            c.get("/api/v1/gateways/gw/desired", headers={"Authorization": f"Bearer {token}"})  # warm
            idle = psutil.Process(hub.proc.pid).memory_info().rss
            bombs = {
                "telemetry gzip, 1 GiB of zeros": (gzip_bomb(1 << 30), "gzip", "telemetry", token),
                "telemetry gzip, 300 MiB of JSON": (
                    gzip_bomb(300 << 20, b'{"seq": 1, ' * 100_000),
                    "gzip",
                    "telemetry",
                    token,
                ),
                "telemetry deflate, 1 GiB": (
                    zlib.compress(b"\0" * (64 << 20), 9) * 16,
                    "deflate",
                    "telemetry",
                    token,
                ),
                "bundle tar.gz, 1 GiB": (tar_gz_bomb(1 << 30), None, "models", admin),
            }
            figures: dict[str, Any] = {"idle_rss_mb": round(idle / 2**20, 1), "bombs": {}}
            with PeakRss(hub.proc.pid) as peak:
                for what, (body, encoding, kind, tok) in bombs.items():
                    headers = {"Authorization": f"Bearer {tok}"}
                    if encoding:
                        headers["Content-Encoding"] = encoding
                    path = "/api/v1/gateways/gw/telemetry" if kind == "telemetry" else "/api/v1/models"
                    r = c.post(path, content=body, headers=headers)
                    assert r.status_code in (400, 413, 422), (what, r.status_code, r.text[:200])
                    assert "bomb" in r.text or "over" in r.text or "more than" in r.text, (what, r.text)
                    figures["bombs"][what] = {
                        "sent_bytes": len(body),
                        "status": r.status_code,
                        "answer": r.json()["detail"][:120],
                    }
            assert (
                c.get("/api/v1/gateways/gw/desired", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )  # still serving
        figures["peak_rss_mb"] = round(peak.peak / 2**20, 1)
        figures["peak_above_idle_mb"] = round((peak.peak - idle) / 2**20, 1)
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / f"hub-bomb-{engine.dialect.name}.json").write_text(json.dumps(figures, indent=1))
        assert peak.peak - idle < 100 * 2**20, figures
    finally:
        hub.kill()


def _samples_record(seq: int, n: int) -> StoredRecord:
    samples = [
        {
            "model": "m",
            "id": f"{seq}-{i}",
            "ts": 1000.0 + i,
            "inputs": ["a", "b"],
            "x": [1.0, 2.0],
            "label": "OK",
            "predicted": "NOK",
            "version": "1",
        }
        for i in range(n)
    ]
    return StoredRecord(
        seq=seq,
        kind="training_samples",
        priority=3,
        created=time.time(),
        payload=zlib.compress(json.dumps(samples).encode()),
        items=n,
    )


def test_kill_9_between_insert_and_ingest_loses_no_sample(
    engine: Engine, db_url: str, tmp_path: Path
) -> None:
    token = add_gateway(engine, "gw")
    marker = tmp_path / "paused"
    records = [_samples_record(1, 5), _samples_record(2, 7)]
    body = batch_body("gw", records)
    headers = {"Authorization": f"Bearer {token}", "Content-Encoding": "gzip"}
    hub = HubProcess(
        db_url,
        tmp_path / "data",
        {"EDGE_HUB_PAUSE_AT": "after_telemetry_insert", "EDGE_HUB_PAUSE_FILE": str(marker)},
    )
    hub.start()
    try:

        def upload() -> None:
            try:
                httpx.post(
                    f"{hub.url}/api/v1/gateways/gw/telemetry", content=body, headers=headers, timeout=30
                )
            except httpx.HTTPError:
                pass  # the hub dies under it: the agent would retry

        sender = threading.Thread(target=upload, daemon=True)
        sender.start()
        deadline = time.monotonic() + 20
        while not marker.exists():
            assert time.monotonic() < deadline, "the hub never reached the pause point"
            time.sleep(0.02)
        hub.kill()  # inside the transaction: the rows are inserted, the samples not yet
        sender.join(10)
    finally:
        hub.kill()
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(TrainingSample)) == 0
    hub = HubProcess(db_url, tmp_path / "data")
    hub.start()
    try:
        r = httpx.post(f"{hub.url}/api/v1/gateways/gw/telemetry", content=body, headers=headers, timeout=30)
        again = httpx.post(
            f"{hub.url}/api/v1/gateways/gw/telemetry", content=body, headers=headers, timeout=30
        )
    finally:
        hub.kill()
    assert r.status_code == 200 and again.json()["duplicates"] == 2
    with Session(engine) as s:
        ids = sorted(s.scalars(select(TrainingSample.sample_id)))
        stored = s.scalar(select(func.count()).select_from(Telemetry))
    assert ids == sorted([f"1-{i}" for i in range(5)] + [f"2-{i}" for i in range(7)])  # all, once
    assert stored == 2


def test_an_upload_cut_mid_body_is_one_log_line(engine: Engine, db_url: str, tmp_path: Path) -> None:
    import socket

    token = add_gateway(engine, "gw")
    hub = HubProcess(db_url, tmp_path / "data")
    hub.start()
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", hub.port), timeout=5) as sock:
                sock.sendall(
                    (
                        f"POST /api/v1/gateways/gw/telemetry HTTP/1.1\r\nHost: x\r\n"
                        f"Authorization: Bearer {token}\r\nContent-Encoding: gzip\r\n"
                        "Content-Length: 100000\r\n\r\n"
                    ).encode()
                    + gzip.compress(b"{" * 1000)[:500]
                )
                time.sleep(0.2)
        time.sleep(0.5)
        with httpx.Client(base_url=hub.url) as c:  # still serving
            assert (
                c.get("/api/v1/gateways/gw/desired", headers={"Authorization": f"Bearer {token}"}).status_code
                == 200
            )
    finally:
        err = hub.stderr()
    assert "Traceback" not in err and "ClientDisconnect" not in err, err[-3000:]
    assert err.count("hung up") == 1, err[-3000:]  # three cuts: one line, the repeats counted
