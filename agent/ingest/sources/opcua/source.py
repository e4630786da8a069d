"""OPC UA source (asyncua): data-change subscriptions that come back after every outage.

asyncua's own auto-reconnect is left off on purpose: the loop here owns reconnects so that
backoff, re-subscription and the 'connected' status are explicit and tested. While the server's
port is closed the loop only probes it over TCP (cheap for a PLC that is booting); a session is
attempted as soon as the port accepts, so data flows about a second after the PLC is back.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any
from urllib.parse import urlparse

from asyncua import Client, ua
from asyncua.common.subscription import Subscription
from asyncua.common.utils import NotEnoughData

from agent.aio.backoff import Backoff
from agent.aio.supervisor import raise_if_cancelling
from agent.config import OpcUaSourceConfig
from agent.errors import SourceError
from agent.ingest.sources.base import RateLimitedLog, ReadingSink, SourceStatus
from agent.ingest.sources.opcua import logfilter
from agent.ingest.sources.opcua.client import application_uri, context, make_client
from agent.ingest.sources.opcua.reasons import SecureChannelRefused, ServerNotTrusted, explain
from agent.types import Quality, Reading

log = logging.getLogger(__name__)

MAX_ITEMS_NODE = "i=24104"  # Server_ServerCapabilities_MaxMonitoredItemsPerSubscription
SERVER_STATE_NODE = "i=2259"  # Server_ServerStatus_State
# Errors that mean "the link or the server is gone, or it refused us": retry. NotEnoughData and
# AssertionError are how asyncua's handshake fails when a server closes the socket mid-way
# (the usual answer to an untrusted certificate). Anything else is a bug and propagates.
CONNECTION_ERRORS = (OSError, asyncio.TimeoutError, ConnectionError, ua.UaError, EOFError,
                     ServerNotTrusted, NotEnoughData, SecureChannelRefused)
HANDSHAKE_ERRORS = (*CONNECTION_ERRORS, AssertionError)


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
    def __init__(self, config: OpcUaSourceConfig, sink: ReadingSink, gateway_id: str = "edge",
                 event_tags: frozenset[str] = frozenset()) -> None:
        self.config = config
        self.sink = sink
        self.status = SourceStatus(config.name, "opcua")
        self.application_uri = application_uri(config, gateway_id)
        self.event_tags = event_tags  # trigger, sample id, labels: every change matters
        self.lost = asyncio.Event()
        self._client: Client | None = None
        self._tags: dict[Any, str] = {}
        self._bad_values = RateLimitedLog(f"opcua {config.name}: non-numeric value")
        self.subscriptions = 0  # how many the last connect created (visible for tests)
        self.queue_sizes: dict[str, int] = {}  # tag -> queue size asked for (visible for tests)
        self._write_types: dict[str, Any] = {}
        url = urlparse(config.endpoint)
        self._host, self._port = url.hostname or "localhost", url.port or 4840
        self._rng = random.Random()
        logfilter.install()

    async def run(self) -> None:
        backoff = Backoff(self.config.reconnect)
        while True:
            await self._until_reachable()
            was_up = False
            try:
                was_up = await self._session(backoff)
            except HANDSHAKE_ERRORS as exc:
                self._refused(exc)
            raise_if_cancelling()
            self._mark_down()
            # after a session that worked, straight back to probing (the PLC restarts); a server
            # that answers but refuses gets the capped backoff between full handshakes
            delay = 0.0 if was_up else max(self.config.probe_interval_s, backoff.next_delay())
            if delay:
                log.debug("opcua %s: next session attempt in %.1fs", self.config.name, delay)
                await asyncio.sleep(delay)
            self.status.reconnects += 1

    async def _until_reachable(self) -> None:
        """TCP probes, one per probe interval (plus up to 20% jitter so a fleet does not probe in
        step), until the server's port accepts a connection."""
        cfg = self.config
        while True:
            self.status.attempts += 1
            try:
                async with asyncio.timeout(min(cfg.timeout_s, max(1.0, cfg.probe_interval_s))):
                    _, writer = await asyncio.open_connection(self._host, self._port)
                writer.close()
                return
            except (OSError, TimeoutError) as exc:
                self._refused(exc)
            raise_if_cancelling()
            await asyncio.sleep(cfg.probe_interval_s * self._rng.uniform(1.0, 1.2))

    def _refused(self, exc: BaseException) -> None:
        refusal = explain(exc, context(self.config, self.application_uri))
        news = self.status.connected or refusal.reason != self.status.reason
        self.status.mark_down(refusal.message, refusal.reason)
        if news:  # one line per new reason, not one per retry
            log.warning("opcua %s: %s [%s]", self.config.name, refusal.message, refusal.reason)

    async def _session(self, backoff: Backoff) -> bool:
        """One session from connect to loss; True when it got as far as subscribing."""
        cfg = self.config
        self.status.attempts += 1
        async with asyncio.timeout(cfg.timeout_s * 2):
            client = await make_client(cfg, self.application_uri)
        client.connection_lost_callback = self._on_lost
        self.lost.clear()
        try:
            try:
                async with asyncio.timeout(cfg.timeout_s * 2):
                    await client.connect()
            except (AssertionError, NotEnoughData) as exc:
                if cfg.security.mode == "None":
                    raise
                raise SecureChannelRefused(str(exc)) from exc
            self._client = client
            await self._subscribe(client)
            self.status.mark_connected()
            backoff.reset()
            log.info("opcua %s: connected to %s, %d nodes in %d subscription(s)",
                     cfg.name, cfg.endpoint, len(cfg.nodes), self.subscriptions)
            try:
                await self._watch(client)
            except CONNECTION_ERRORS as exc:
                why = f"connection lost ({type(exc).__name__}: {str(exc)[:120]})"
                self.status.mark_down(why, "connection_lost")
                log.warning("opcua %s: %s to %s; reconnecting as soon as it answers", cfg.name,
                            why, cfg.endpoint)
            return True
        finally:
            self._client = None
            self._write_types.clear()
            await _close_quietly(client, cfg.timeout_s)

    def _queue_size(self, tag: str, explicit: int | None) -> int:
        if explicit is not None:
            return explicit
        # 0 asks for the server's default: 1 (the newest value only) on a server that follows
        # the specification, which is all a process value needs
        return self.config.event_queue.size if tag in self.event_tags else 0

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        limit = cfg.max_items_per_subscription
        try:
            async with asyncio.timeout(cfg.timeout_s):
                server_limit = await client.get_node(MAX_ITEMS_NODE).read_value()
            if isinstance(server_limit, int) and server_limit > 0:
                limit = min(limit, server_limit)
        except CONNECTION_ERRORS:
            pass  # capability not exposed: keep the configured limit
        specs = {client.get_node(n.node_id).nodeid: n for n in cfg.nodes}
        self._tags = {nodeid: spec.tag for nodeid, spec in specs.items()}
        self.queue_sizes = {n.tag: self._queue_size(n.tag, n.queue_size) for n in cfg.nodes}
        handler = _Handler(self)
        # event tags first: they then share the first subscription, whatever the split
        pending = sorted(specs, key=lambda nid: specs[nid].tag not in self.event_tags)
        self.subscriptions = 0
        while pending:
            chunk, pending = pending[:limit], pending[limit:]
            async with asyncio.timeout(cfg.timeout_s):
                sub: Subscription = await client.create_subscription(cfg.publishing_interval_ms,
                                                                     handler)
            self.subscriptions += 1
            requests = []
            for nodeid in chunk:
                # asyncua's helper keeps the client handles unique; the discard policy is ours
                mir = sub._make_monitored_item_request(
                    client.get_node(nodeid), ua.AttributeIds.Value, None,
                    self.queue_sizes[specs[nodeid].tag], ua.MonitoringMode.Reporting,
                    cfg.sampling_interval_ms)
                mir.RequestedParameters.DiscardOldest = cfg.event_queue.discard_oldest
                requests.append(mir)
            async with asyncio.timeout(cfg.timeout_s):
                results = await sub.create_monitored_items(requests)
            too_many = []
            for nodeid, res in zip(chunk, results, strict=True):
                if not isinstance(res, ua.StatusCode):
                    continue
                if res.value == ua.StatusCodes.BadTooManyMonitoredItems:
                    too_many.append(nodeid)
                else:  # a wrong node id must not stop the other tags
                    log.error("opcua %s: node %s refused by the server: %s (check the node id; "
                              "`edge-agent opcua browse %s` lists them)", cfg.name,
                              nodeid.to_string(), res.name, cfg.endpoint)
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
            raise_if_cancelling()  # asyncua answers through wait_for, which can swallow a stop
            self.sink.alive(self.config.name, time.time())

    async def _on_lost(self, exc: Exception) -> None:
        self.lost.set()

    def _mark_down(self) -> None:
        if self.status.connected:
            self.status.mark_down("connection lost", "closed")
            log.warning("opcua %s: connection to %s lost; reconnecting", self.config.name,
                        self.config.endpoint)

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
        if quality == Quality.BAD:
            number = float("nan")
        elif isinstance(value, int | float):  # bool too: a Boolean tag is 0/1
            number = float(value)
        else:
            # text ("12.5", Arabic-Indic digits), bytes, arrays, dates, structures: float() would
            # read some of them as numbers; a tag that stops being a number is bad, not its last
            # good value left standing
            self.status.malformed += 1
            self._bad_values.report(tag, f"opcua {self.config.name}: tag {tag} sent a "
                                         f"non-numeric value of type {type(value).__name__}")
            number, quality = float("nan"), Quality.BAD
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
