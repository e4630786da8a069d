"""The agent as its own Sparkplug B edge node (`outputs.sparkplug`), for SCADA hosts that read
Sparkplug: NBIRTH declares one set of metrics per model (last score, label, sample id, version,
prediction count, health), NDATA carries the newest prediction of each model, the MQTT will is
the NDEATH (same bdSeq as the birth), and NCMD `Node Control/Rebirth` gets a new NBIRTH (at
most one per `rebirth_min_interval_s`: a flood of commands is answered by one birth, not one
each). Like the MQTT output it never blocks inference: only the newest values wait to be sent
(the outbox keeps every prediction)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiomqtt

from agent.aio.backoff import Backoff
from agent.aio.links import SourceStatus
from agent.config import SparkplugOutputConfig
from agent.config.limits import DEFAULT_LIMITS, InputLimits
from agent.inference.batches import PredictionBatch
from agent.ingest import spb
from agent.ingest.mqtt_session import publish, run_session

log = logging.getLogger(__name__)

HEALTH_LEVELS = {"ok": 0, "warning": 1, "alarm": 2}


@dataclass
class _ModelState:
    version: str
    sample_id: str
    score: float
    label: str
    count: int


class SparkplugPublisher:
    def __init__(self, config: SparkplugOutputConfig, gateway_id: str,
                 health: Callable[[], str] | None = None,
                 limits: InputLimits = DEFAULT_LIMITS) -> None:
        self.config = config
        self.limits = limits
        self.edge_node = config.edge_node or gateway_id
        self.status = SourceStatus("sparkplug-out", "sparkplug-out", role="output")
        self._health = health or (lambda: "ok")
        self._models: dict[str, _ModelState] = {}
        self._born: set[str] = set()  # models declared in the current birth
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._rebirth = False
        self._last_birth = -1e9  # monotonic time of the last NBIRTH
        self.rebirth_requests = 0
        self.bd_seq = 0
        self._seq = 0
        self.births = 0
        self.published = 0

    def counters(self) -> dict[str, int]:
        """For status.json and /metrics."""
        return {"rebirth_requests": self.rebirth_requests, "births": self.births,
                "published": self.published}

    def topic(self, kind: str) -> str:
        return f"{spb.NAMESPACE}/{self.config.group}/{kind}/{self.edge_node}"

    def offer(self, batch: PredictionBatch) -> None:
        n = len(batch)
        if not n:
            return
        last = batch.prediction(n - 1)
        label = last.outputs.get("label")
        previous = self._models.get(batch.model_name)
        self._models[batch.model_name] = _ModelState(
            batch.model_version, last.sample_id, float(batch.score[n - 1]),
            str(label) if label is not None else "", (previous.count if previous else 0) + n)
        self._dirty.add(batch.model_name)
        self._wake.set()

    async def run(self) -> None:
        backoff = Backoff(self.config.broker.reconnect)
        while True:  # a new bdSeq for every connection: the will must match its birth
            will = aiomqtt.Will(self.topic("NDEATH"), self._death(), qos=1)
            await run_session(self.config.broker, f"edge-{self.edge_node}-sparkplug", self.status,
                              [(self.topic("NCMD"), 1)], on_connected=self._serve, will=will,
                              once=True, backoff=backoff)
            self.bd_seq = (self.bd_seq + 1) % 256

    def _death(self) -> bytes:
        m = spb.spb.Metric(timestamp=_now_ms(), name=spb.BD_SEQ, datatype=spb.spb.DataType.INT64,
                           value=self.bd_seq)
        return bytes(spb.spb.NDeath(_now_ms(), m).encode())

    def _next_seq(self) -> int:
        seq, self._seq = self._seq, (self._seq + 1) % 256
        return seq

    def _metrics(self, name: str, state: _ModelState, ts: int) -> list[spb.spb.Metric]:
        dt = spb.spb.DataType
        level = HEALTH_LEVELS.get(self._health(), 2)
        return [spb.spb.Metric(ts, f"{name}/Score", dt.DOUBLE, value=state.score),
                spb.spb.Metric(ts, f"{name}/Label", dt.STRING, value=state.label),
                spb.spb.Metric(ts, f"{name}/SampleId", dt.STRING, value=state.sample_id),
                spb.spb.Metric(ts, f"{name}/Version", dt.STRING, value=state.version),
                spb.spb.Metric(ts, f"{name}/Predictions", dt.UINT64, value=state.count),
                spb.spb.Metric(ts, f"{name}/Health", dt.INT32, value=level)]

    async def _birth(self, client: aiomqtt.Client) -> None:
        ts = _now_ms()
        self._seq = 0
        dt = spb.spb.DataType
        metrics = [spb.spb.Metric(ts, spb.BD_SEQ, dt.INT64, value=self.bd_seq),
                   spb.spb.Metric(ts, spb.REBIRTH, dt.BOOLEAN, value=False)]
        for name, state in self._models.items():
            metrics += self._metrics(name, state, ts)
        payload = spb.spb.NBirth(ts, self._next_seq(), tuple(metrics)).encode()
        await publish(client, self.topic("NBIRTH"), payload, qos=0, timeout=10)
        self._born = set(self._models)
        self._dirty.clear()
        self.births += 1
        self._last_birth = time.monotonic()

    async def _serve(self, client: aiomqtt.Client) -> None:
        await self._birth(client)
        commands = asyncio.ensure_future(self._commands(client))
        try:
            while True:
                if commands.done():
                    commands.result()  # the broker went away: raises MqttError
                wait = 1.0
                if self._rebirth:  # asked for: at most one birth per rebirth_min_interval_s
                    wait = self._last_birth + self.config.rebirth_min_interval_s - time.monotonic()
                if (self._rebirth and wait <= 0) or set(self._models) - self._born:
                    self._rebirth = False
                    wait = 1.0
                    await self._birth(client)  # a new model needs its metrics declared
                if self._dirty:
                    await self._data(client)
                self._wake.clear()
                try:
                    async with asyncio.timeout(min(1.0, max(wait, 0.01))):
                        await self._wake.wait()
                except TimeoutError:
                    pass
                if self.config.min_interval_s:
                    await asyncio.sleep(self.config.min_interval_s)
        finally:
            commands.cancel()

    async def _data(self, client: aiomqtt.Client) -> None:
        ts = _now_ms()
        metrics = []
        for name in sorted(self._dirty):
            metrics += self._metrics(name, self._models[name], ts)
        self._dirty.clear()
        payload = spb.spb.NData(ts, self._next_seq(), tuple(metrics)).encode(include_dtypes=True)
        await publish(client, self.topic("NDATA"), payload, qos=0, timeout=10)
        self.published += 1

    async def _commands(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                continue
            try:
                if len(payload) > self.limits.payload_max_bytes:
                    raise spb.DecodeError(f"{len(payload)} bytes, more than "
                                          f"limits.payload_max_bytes ({self.limits.payload_max_bytes})")
                decoded = spb.decode(bytes(payload))
            except spb.DecodeError as exc:
                log.warning("sparkplug-out: malformed NCMD on %s ignored (%s)", message.topic,
                            str(exc)[:80], extra={"limit_key": "sparkplug-out:malformed-ncmd"})
                continue
            if any(m.name == spb.REBIRTH and m.value for m in decoded.metrics):
                self.rebirth_requests += 1
                if not self._rebirth:  # one line per birth it leads to, not one per command
                    log.info("sparkplug-out: rebirth requested by a host (%d so far)",
                             self.rebirth_requests)
                self._rebirth = True
                self._wake.set()


def _now_ms() -> int:
    return int(time.time() * 1000)
