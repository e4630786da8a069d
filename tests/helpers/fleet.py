"""A hub of several processes on one PostgreSQL schema: `edge-hub serve` API workers and
`edge-hub worker` job workers, each its own process with its own DATA directory (the keys
provisioned to each, as an operator would), for the fleet tests and bench.fleet."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

from agent.demo.sim.broker import free_port
from hub.retrain import hub_key


@dataclass
class Proc:
    kind: str  # serve | worker
    argv: list[str]
    data: Path
    log: Path
    port: int | None = None
    popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid


@dataclass
class Fleet:
    db_url: str
    root: Path
    release_pub: Path | None = None
    env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.keys = self.root / "provisioned"
        hub_key(self.keys)  # one hub signing key for every machine (a secret, never in the database)
        if self.release_pub is not None:
            shutil.copy(self.release_pub, self.keys / "trusted-keys" / "release.pub")

    def _data(self, name: str) -> Path:
        data = self.root / name
        for sub in ("keys", "trusted-keys"):
            shutil.copytree(self.keys / sub, data / sub, dirs_exist_ok=True)
        return data

    def serve(self, *extra: str, workers: int = 1) -> Proc:
        n = len(self.procs)
        data, port = self._data(f"api-{n}"), free_port()
        argv = [sys.executable, "-m", "hub", "serve", "--db", self.db_url, "--data", str(data),
                "--port", str(port), "--log-level", "warning", *extra]
        if workers > 1:
            argv += ["--workers", str(workers)]
        return self._start(Proc("serve", argv, data, self.root / f"api-{n}.log", port))

    def worker(self, *extra: str) -> Proc:
        n = len(self.procs)
        data = self._data(f"worker-{n}")
        argv = [sys.executable, "-m", "hub", "worker", "--db", self.db_url, "--data", str(data), *extra]
        return self._start(Proc("worker", argv, data, self.root / f"worker-{n}.log"))

    def _start(self, p: Proc) -> Proc:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        with p.log.open("ab") as log:
            p.popen = subprocess.Popen(p.argv, stdout=log, stderr=subprocess.STDOUT, env=env)
        self.procs.append(p)
        return p

    def wait_ready(self, engine: Engine, queue_workers: int, within_s: float = 90.0) -> None:
        """Every API worker answers, and ``queue_workers`` queue workers have registered."""
        deadline = time.monotonic() + within_s
        for p in self.procs:
            while not self._ready(p, deadline):
                time.sleep(0.1)
        while True:
            with engine.connect() as conn:
                registered = conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one()
            if registered >= queue_workers:
                return
            self._check_alive(deadline)
            time.sleep(0.1)

    def _ready(self, p: Proc, deadline: float) -> bool:
        self._check_alive(deadline)
        if p.port is None:
            return True
        try:
            return httpx.get(f"{p.url}/metrics", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _check_alive(self, deadline: float) -> None:
        for p in self.procs:
            assert p.popen is not None
            if p.popen.poll() is not None:
                raise AssertionError(f"{p.kind} exited {p.popen.returncode}: {p.log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError("the fleet did not start: " + " | ".join(
                p.log.read_text()[-800:] for p in self.procs))

    def kill(self, pid: int) -> Proc:
        """SIGKILL one process (no clean-up of any kind), as a power cut would."""
        p = next(p for p in self.procs if p.popen is not None and p.popen.pid == pid)
        os.kill(pid, signal.SIGKILL)
        assert p.popen is not None
        p.popen.wait(10)
        return p

    def restart(self, p: Proc) -> Proc:
        self.procs.remove(p)
        with p.log.open("ab") as log:
            p.popen = subprocess.Popen(p.argv, stdout=log, stderr=subprocess.STDOUT,
                                       env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env})
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            if p.popen is not None and p.popen.poll() is None:
                p.popen.terminate()
        for p in self.procs:
            if p.popen is not None:
                try:
                    p.popen.wait(15)
                except subprocess.TimeoutExpired:
                    p.popen.kill()
                    p.popen.wait(5)
