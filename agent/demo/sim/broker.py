"""An MQTT broker for the demo and the tests: mosquitto when installed, else embedded amqtt."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from agent.aio.ports import PORT_RANGE_ENV, free_port, wait_port

# re-exported: the demo, the benches and the tests take their ports from here
__all__ = ["PORT_RANGE_ENV", "EmbeddedBroker", "MosquittoBroker", "free_port", "mosquitto_path", "wait_port"]


def mosquitto_path() -> str | None:
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


class MosquittoBroker:
    """A private mosquitto process on a free loopback port; restartable on the same port."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="mosq-"))
        self._proc: subprocess.Popen[bytes] | None = None
        self.kind = "mosquitto"

    def start(self) -> None:
        exe = mosquitto_path()
        if exe is None:
            raise FileNotFoundError("mosquitto is not installed")
        conf = self._dir / "mosquitto.conf"
        # max_queued_messages raised: the default 1000 silently drops QoS 1 to slow subscribers
        conf.write_text(f"listener {self.port} 127.0.0.1\nallow_anonymous true\n"
                        "max_queued_messages 100000\npersistence false\n")
        self._proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None


class EmbeddedBroker:
    """amqtt in this process: slower than mosquitto, but needs nothing installed."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._broker: Any = None
        self.kind = "amqtt"

    async def start_async(self) -> None:
        from amqtt.broker import Broker

        config = {"listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                  "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                              {"allow_anonymous": True}}}
        self._broker = Broker(config)
        await self._broker.start()

    async def stop_async(self) -> None:
        if self._broker is not None:
            with contextlib.suppress(Exception):  # amqtt raises assorted errors while closing
                async with asyncio.timeout(5):
                    await self._broker.shutdown()
            self._broker = None


@contextlib.asynccontextmanager
async def any_broker() -> Any:
    """Yield a started broker (mosquitto preferred) and stop it afterwards."""
    if mosquitto_path():
        broker = MosquittoBroker()
        broker.start()
        try:
            yield broker
        finally:
            broker.stop()
    else:
        embedded = EmbeddedBroker()
        await embedded.start_async()
        try:
            yield embedded
        finally:
            await embedded.stop_async()
