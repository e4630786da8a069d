"""The hub in a thread of this process (uvicorn, loopback, a free port): for the demo and the
tests, where a real hub is needed next to an agent. Stoppable and restartable on its port."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import uvicorn
from sqlalchemy.engine import Engine

from agent.aio.ports import free_port
from hub.app import create_app
from hub.limits import HubLimits


class HubServer:
    def __init__(self, engine: Engine, data: Path, port: int | None = None,
                 keys: list[Path] | None = None, evaluate_interval_s: float = 0.5,
                 tls: tuple[Path, Path] | None = None, token_cache_s: float | None = None,
                 limits: HubLimits | None = None) -> None:
        self.engine, self.data, self.keys, self.tls = engine, data, keys, tls
        self.limits = limits
        self.token_cache_s = token_cache_s
        self.evaluate_interval_s = evaluate_interval_s
        self.port = port or free_port()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        app = create_app(self.engine, self.data, self.keys, self.evaluate_interval_s,
                         token_cache_s=self.token_cache_s, limits=self.limits)
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on",
                                ssl_certfile=str(self.tls[0]) if self.tls else None,
                                ssl_keyfile=str(self.tls[1]) if self.tls else None)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise TimeoutError("hub did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(10)
            self._server = None
