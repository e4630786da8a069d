"""One MQTT connection that comes back: connect, (re)subscribe, hand messages over, retry.

Shared by the MQTT source, the label listener and the prediction publisher, so every MQTT
connection the agent holds reconnects the same way.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import aiomqtt

from agent.aio.backoff import Backoff
from agent.aio.links import SourceStatus
from agent.aio.supervisor import raise_if_cancelling
from agent.config import MqttBroker, reveal

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes], None]
GOODBYE_TIMEOUT_S = 2.0  # a stopping client waits this long for the broker to see it go


def make_client(broker: MqttBroker, identifier: str, persistent: bool,
                will: aiomqtt.Will | None = None) -> aiomqtt.Client:
    tls_params = None
    if broker.tls is not None:
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(broker.tls.ca_file) if broker.tls.ca_file else None,
            certfile=str(broker.tls.cert_file) if broker.tls.cert_file else None,
            keyfile=str(broker.tls.key_file) if broker.tls.key_file else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
    return aiomqtt.Client(
        broker.host, broker.port,
        username=broker.username, password=reveal(broker.password),
        identifier=broker.client_id or identifier,
        # a persistent session makes the broker keep QoS>0 messages while we reconnect
        clean_session=not persistent,
        keepalive=broker.keepalive_s, timeout=10,
        tls_params=tls_params,
        tls_insecure=broker.tls.insecure if broker.tls else None,
        will=will,
    )


async def run_session(
    broker: MqttBroker,
    identifier: str,
    status: SourceStatus,
    subscriptions: list[tuple[str, int]],
    on_message: MessageHandler | None = None,
    on_connected: Callable[[aiomqtt.Client], Awaitable[None]] | None = None,
    will: aiomqtt.Will | None = None,
    once: bool = False,
    backoff: Backoff | None = None,
) -> None:
    """Run forever: connect with backoff, subscribe, dispatch. Returns only when cancelled, or
    with ``once`` after the first connection (or attempt) ended and its retry delay passed (for
    a caller whose will message changes per connection, as Sparkplug's NDEATH does)."""
    backoff = backoff or Backoff(broker.reconnect)
    while True:
        client = make_client(broker, identifier, persistent=bool(subscriptions), will=will)
        status.attempts += 1
        try:
            async with client:
                try:
                    await _connected_session(client, status, backoff, broker, subscriptions,
                                             on_message, on_connected)
                except asyncio.CancelledError:
                    # stopping: say goodbye to the broker, but do not wait the client's whole
                    # operation timeout (10 s) for its answer: the agent's stop has a budget
                    client.timeout = GOODBYE_TIMEOUT_S
                    raise
        except aiomqtt.MqttError as exc:
            status.mark_down(f"{type(exc).__name__}: {exc}", mqtt_reason(exc))
        raise_if_cancelling()
        status.mark_down()
        delay = backoff.next_delay()
        log.warning("mqtt %s: broker %s:%d unreachable or lost (%s); retry in %.1fs",
                    status.name, broker.host, broker.port, status.last_error, delay)
        await asyncio.sleep(delay)
        status.reconnects += 1
        if once:
            return


async def _connected_session(client: aiomqtt.Client, status: SourceStatus, backoff: Backoff,
                             broker: MqttBroker, subscriptions: list[tuple[str, int]],
                             on_message: MessageHandler | None,
                             on_connected: Callable[[aiomqtt.Client], Awaitable[None]] | None) -> None:
    for topic, qos in subscriptions:
        await client.subscribe(topic, qos=qos)
    status.mark_connected()
    backoff.reset()
    log.info("mqtt %s: connected to %s:%d", status.name, broker.host, broker.port)
    if on_connected is not None:
        await on_connected(client)
    elif on_message is not None:
        async for message in client.messages:
            payload = message.payload
            if not isinstance(payload, bytes | bytearray):
                payload = str(payload).encode()
            on_message(str(message.topic), bytes(payload))
    else:
        await until_disconnected(client)  # connected, nothing to read


async def until_disconnected(client: aiomqtt.Client) -> None:
    """Return never; raise MqttError when the broker goes away. aiomqtt tells a lost connection
    only to its message iterator: a client that only publishes would otherwise not notice it
    until its next publish."""
    async for _ in client.messages:
        pass  # nothing is subscribed; the iterator is how the loss is heard
    raise aiomqtt.MqttError("disconnected")


async def publish(client: aiomqtt.Client, topic: str, payload: bytes | str, qos: int,
                  **options: Any) -> None:
    """``client.publish``, then stop if this task is being cancelled. aiomqtt waits for the
    broker's acknowledgement in asyncio.wait_for, which on Python 3.11 returns instead of raising
    when a cancellation and the acknowledgement arrive together: a publishing loop would then
    wait for its next message forever, and the agent's stop hang (a CI run under load: "agent
    did not stop within 15 s", the prediction publisher still waiting)."""
    await client.publish(topic, payload, qos=qos, **options)
    raise_if_cancelling()


def mqtt_reason(exc: aiomqtt.MqttError) -> str:
    """A stable label for a metric: the broker's CONNACK reason, or what happened to the socket."""
    if isinstance(exc, aiomqtt.MqttCodeError) and not isinstance(exc.rc, int):
        return str(getattr(exc.rc, "getName", lambda: exc.rc)()).lower().replace(" ", "_")
    text = str(exc).lower()
    for needle, reason in (("refused", "connection_refused"), ("timed out", "timeout"),
                           ("lost", "connection_lost"), ("not authori", "not_authorized"),
                           ("bad user name or password", "bad_credentials"),
                           ("certificate", "tls_certificate"), ("ssl", "tls_error")):
        if needle in text:
            return reason
    return "unreachable"
