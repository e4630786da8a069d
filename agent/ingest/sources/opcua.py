"""OPC UA source (asyncua): data-change subscriptions that come back after every outage.

asyncua's own auto-reconnect is left off on purpose: the loop here owns reconnects so that
backoff, re-subscription and the 'connected' status are explicit and tested.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import Subscription

from agent.aio.backoff import Backoff
from agent.aio.supervisor import raise_if_cancelling
from agent.config import OpcUaSourceConfig, reveal
from agent.errors import SourceError
from agent.ingest.sources.base import RateLimitedLog, ReadingSink, SourceStatus
from agent.types import Quality, Reading

log = logging.getLogger(__name__)

MAX_ITEMS_NODE = "i=24104"  # Server_ServerCapabilities_MaxMonitoredItemsPerSubscription
SERVER_STATE_NODE = "i=2259"  # Server_ServerStatus_State
# Errors that mean "the link or the server is gone": retry. Anything else is a bug and propagates.
CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, ConnectionError, ua.UaError, EOFError)


async def _close_quietly(client: Client, within: float) -> None:
    """Disconnect politely, but never let a dead server or a swallowed cancellation inside the
    library hold up a reconnect or the shutdown: wait at most ``within`` s, then walk away."""
    task = asyncio.ensure_future(client.disconnect())
    done, _ = await asyncio.wait({task}, timeout=within)
    if not done:
        task.cancel()
        log.warning("opcua: disconnect did not finish in %.1fs; abandoned", within)
    elif not task.cancelled() and task.exception() is not None:
        pass  # the server is already gone; nothing to close politely


class _Handler:
    """asyncua calls this for each notification; it only converts and hands over."""

    def __init__(self, source: OpcUaSource) -> None:
        self._source = source

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self._source.on_value(node.nodeid, val, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        self._source.lost.set()


class OpcUaSource:
    def __init__(self, config: OpcUaSourceConfig, sink: ReadingSink) -> None:
        self.config = config
        self.sink = sink
        self.status = SourceStatus(config.name, "opcua")
        self.lost = asyncio.Event()
        self._client: Client | None = None
        self._tags: dict[Any, str] = {}
        self._bad_values = RateLimitedLog(f"opcua {config.name}: non-numeric value")
        self.subscriptions = 0  # how many the last connect created (visible for tests)
        self._write_types: dict[str, Any] = {}

    async def run(self) -> None:
        backoff = Backoff(self.config.reconnect)
        while True:
            try:
                await self._session(backoff)
            except CONNECTION_ERRORS as exc:
                self.status.last_error = f"{type(exc).__name__}: {exc}"
            raise_if_cancelling()
            self._mark_down()
            delay = backoff.next_delay()
            log.warning("opcua %s: connection to %s lost or refused (%s); retry in %.1fs",
                        self.config.name, self.config.endpoint, self.status.last_error, delay)
            await asyncio.sleep(delay)
            self.status.reconnects += 1

    async def _session(self, backoff: Backoff) -> None:
        cfg = self.config
        client = Client(cfg.endpoint, timeout=cfg.timeout_s)
        client.connection_lost_callback = self._on_lost
        if cfg.username:
            client.set_user(cfg.username)
            password = reveal(cfg.password)
            if password:
                client.set_password(password)
        if cfg.security.mode != "None":
            sec = cfg.security
            parts = [sec.policy, sec.mode, str(sec.certificate), str(sec.private_key)]
            if sec.server_certificate:
                parts.append(str(sec.server_certificate))
            await client.set_security_string(",".join(parts))
        self.lost.clear()
        try:
            async with asyncio.timeout(cfg.timeout_s * 2):
                await client.connect()
            self._client = client
            await self._subscribe(client)
            self.status.connected = True
            self.status.connected_since = time.time()
            self.status.last_error = None
            backoff.reset()
            log.info("opcua %s: connected to %s, %d nodes in %d subscription(s)",
                     cfg.name, cfg.endpoint, len(cfg.nodes), self.subscriptions)
            await self._watch(client)
        finally:
            self._client = None
            self._write_types.clear()
            await _close_quietly(client, cfg.timeout_s)

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        limit = cfg.max_items_per_subscription
        try:
            server_limit = await client.get_node(MAX_ITEMS_NODE).read_value()
            if isinstance(server_limit, int) and server_limit > 0:
                limit = min(limit, server_limit)
        except CONNECTION_ERRORS:
            pass  # capability not exposed: keep the configured limit
        nodes = [client.get_node(n.node_id) for n in cfg.nodes]
        self._tags = {node.nodeid: spec.tag for node, spec in zip(nodes, cfg.nodes, strict=True)}
        handler = _Handler(self)
        pending = nodes
        self.subscriptions = 0
        while pending:
            chunk, pending = pending[:limit], pending[limit:]
            sub: Subscription = await client.create_subscription(cfg.publishing_interval_ms, handler)
            self.subscriptions += 1
            results = await sub.subscribe_data_change(
                chunk, sampling_interval=cfg.sampling_interval_ms)
            too_many = []
            for node, res in zip(chunk, results, strict=True):
                if not isinstance(res, ua.StatusCode):
                    continue
                if res.value == ua.StatusCodes.BadTooManyMonitoredItems:
                    too_many.append(node)
                else:  # a wrong node id must not stop the other tags
                    log.error("opcua %s: node %s refused by the server: %s (check the node id)",
                              cfg.name, node.nodeid.to_string(), res.name)
            if too_many:
                if len(too_many) == len(chunk):
                    raise SourceError(f"sources.{cfg.name}: server accepts no monitored items")
                limit = len(chunk) - len(too_many)  # learn the real limit and split the rest
                pending = too_many + pending

    async def _watch(self, client: Client) -> None:
        """Probe the server state; a failed probe or a lost-callback ends the session."""
        state_node = client.get_node(SERVER_STATE_NODE)
        while True:
            try:
                async with asyncio.timeout(self.config.watchdog_s):
                    await self.lost.wait()
                raise ConnectionError("server reported the connection lost")
            except TimeoutError:
                pass
            async with asyncio.timeout(self.config.timeout_s):
                await state_node.read_value()
            self.sink.alive(self.config.name, time.time())

    async def _on_lost(self, exc: Exception) -> None:
        self.lost.set()

    def _mark_down(self) -> None:
        if self.status.connected:
            self.status.connected = False
            self.status.connected_since = None

    def on_value(self, node_id: Any, value: Any, data_value: Any) -> None:
        tag = self._tags.get(node_id)
        if tag is None:
            return
        now = time.time()
        status = getattr(data_value, "StatusCode", None)
        if status is None or status.is_good():
            quality = Quality.GOOD
        elif status.is_uncertain():  # e.g. UncertainLastUsableValue: the device lost its sensor
            quality = Quality.STALE
        else:  # a Bad value carries no usable number: the tag must invalidate samples, not linger
            quality = Quality.BAD
        try:
            number = float("nan") if quality == Quality.BAD else float(value)
        except (TypeError, ValueError):
            self.status.malformed += 1
            self._bad_values.report(tag, f"opcua {self.config.name}: tag {tag} sent a "
                                         f"non-numeric value of type {type(value).__name__}")
            return
        src_ts = data_value.SourceTimestamp
        source_ts = src_ts.timestamp() if src_ts is not None else now
        self.status.readings += 1
        self.sink.offer(Reading(self.config.name, tag, number, source_ts, now, quality))

    async def write(self, node_id: str, value: float) -> None:
        """Write-back of a model output to the PLC; raises SourceError when not connected."""
        client = self._client
        if client is None:
            raise SourceError(f"opcua {self.config.name}: not connected, cannot write {node_id}")
        node = client.get_node(node_id)
        try:
            variant_type = self._write_types.get(node_id)
            if variant_type is None:  # asked once per node: the PLC's type decides the encoding
                async with asyncio.timeout(self.config.timeout_s):
                    variant_type = await node.read_data_type_as_variant_type()
                self._write_types[node_id] = variant_type
            typed: float | int | bool = value
            if variant_type == ua.VariantType.Boolean:
                typed = bool(value)
            elif variant_type not in (ua.VariantType.Float, ua.VariantType.Double):
                typed = round(value)
            async with asyncio.timeout(self.config.timeout_s):
                await node.write_value(ua.DataValue(ua.Variant(typed, variant_type)))
        except CONNECTION_ERRORS as exc:
            raise SourceError(
                f"opcua {self.config.name}: write to {node_id} failed: {exc}") from exc
