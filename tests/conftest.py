"""Shared fixtures: real peers only (mosquitto process, asyncua server, trained ONNX models)."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from agent.aio.loglimit import RepeatFilter
from agent.demo.sim.broker import PORT_RANGE_ENV, EmbeddedBroker, MosquittoBroker, mosquitto_path
from agent.demo.sim.process import history
from agent.models.builder import build_bundle
from agent.models.bundle import generate_keypair
from agent.models.training import train_onnx, write_csv
from hub.storage import migrate

PG_URL = os.environ.get("EDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist every worker picks free ports from its own range (gw0: 20000-23999,
    gw1: 24000-27999, ...), below the kernel's ephemeral range: two workers never start servers
    on the same port. Processes the tests start inherit the range."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if worker.startswith("gw") and worker[2:].isdigit():
        first = 20000 + 4000 * (int(worker[2:]) % 3)
        os.environ[PORT_RANGE_ENV] = f"{first}-{first + 3999}"


class ThreadedEmbeddedBroker:
    """amqtt on its own loop in a thread: the stand-in where mosquitto is not installed."""

    def __init__(self) -> None:
        self._inner = EmbeddedBroker()
        self.port = self._inner.port
        self.kind = "amqtt"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()
        asyncio.run_coroutine_threadsafe(self._inner.start_async(), self._loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._inner.stop_async(), self._loop).result(10)


def make_broker(port: int | None = None) -> Any:
    if mosquitto_path():
        return MosquittoBroker(port)
    if os.environ.get("EDGE_REQUIRE_MOSQUITTO"):
        pytest.fail("mosquitto is required (EDGE_REQUIRE_MOSQUITTO is set) but not installed: "
                    "apt-get install mosquitto")
    return ThreadedEmbeddedBroker()



@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A command run in-process (main(["run", ...])) installs its handler on the root logger,
    bound to the sys.stderr of that moment (capsys's capture): later tests must not write to
    that closed stream."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for handler in handlers:  # pytest's handlers live for the session: no limiter state carries over
        for limiter in [f for f in handler.filters if isinstance(f, RepeatFilter)]:
            handler.removeFilter(limiter)

@pytest.fixture(scope="session")
def broker() -> Iterator[Any]:
    """One broker process for the session, on a free port."""
    b = make_broker()
    b.start()
    yield b
    b.stop()


@pytest.fixture()
def private_broker() -> Iterator[Any]:
    """A broker of this test's own, which the test may stop and restart on the same port."""
    b = make_broker()
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real ONNX classifier trained on the simulated line, its CSVs and a signed bundle."""
    root = tmp_path_factory.mktemp("trained")
    x, names, y = history(1600, seed=1)
    write_csv(root / "train.csv", x[:1200], names, y[:1200])
    write_csv(root / "holdout.csv", x[1200:], names, y[1200:])
    model = train_onnx(x[:1200], y[:1200], root / "model.onnx")
    generate_keypair(root / "key.pem", root / "key.pub")
    generate_keypair(root / "other.pem", root / "other.pub")
    bundle = root / "bundle"
    build_bundle(model, root / "train.csv", "label", "moulding-nok", "1.0.0", bundle,
                 holdout_csv=root / "holdout.csv", positive_class="NOK",
                 signing_key=root / "key.pem")
    return {"root": root, "model": model, "train": root / "train.csv",
            "holdout": root / "holdout.csv", "bundle": bundle, "key": root / "key.pem",
            "pub": root / "key.pub", "other_key": root / "other.pem", "other_pub": root / "other.pub"}


@pytest.fixture(scope="session")
def versions(trained: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """More versions of the trained model: 1.1.0 (same model), 2.0.0 (worse on labelled
    outcomes), 3.0.0 (passes its self-test, fails on line data), 4.0.0 (same answers, far
    slower), 9.0.0 (signed, but its self-test fails), and 7.0.0/7.1.0 (7.1.0 is more accurate
    but misses NOK parts 7.0.0 catches)."""
    from tests.helpers.versions import cost_pair, fragile_model, slow_model, variant, worse_model

    root = tmp_path_factory.mktemp("versions")
    return {**cost_pair(root, trained),
            "1.1.0": variant(trained["bundle"], "1.1.0", root / "v1.1.0", trained["key"]),
            "2.0.0": worse_model(root, trained, "2.0.0"),
            "9.0.0": variant(trained["bundle"], "9.0.0", root / "v9.0.0", trained["key"],
                             self_test_off=True),
            "3.0.0": fragile_model(root, trained, "3.0.0"),
            "4.0.0": slow_model(root, trained, "4.0.0")}


@pytest.fixture(params=["sqlite", "postgresql"])
def blank_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty database for the hub on SQLite and on PostgreSQL (a schema of its own per test)."""
    if request.param == "sqlite":
        eng = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
        yield eng
        eng.dispose()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"  # each test its own schema in the shared database
    try:
        admin = create_engine(PG_URL)
        with admin.begin() as conn:
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # no server: skip here, fail in CI
        if os.environ.get("EDGE_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL at {PG_URL} is required in CI: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {str(exc).splitlines()[0]}")
    # the schema in the URL itself: a hub started as a process (edge-hub --db URL) gets it too
    eng = create_engine(f"{PG_URL}?options=-csearch_path%3D{schema}")
    yield eng
    eng.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
    admin.dispose()


@pytest.fixture()
def engine(blank_engine: Engine) -> Engine:
    """The hub's database on SQLite and on PostgreSQL, created by its migrations."""
    migrate(blank_engine)
    return blank_engine
