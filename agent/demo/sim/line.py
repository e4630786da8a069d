"""The simulated machine as an OPC UA server, and its quality station as an MQTT publisher."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
from asyncua import Server, ua

from agent.demo.sim.limits import PlcLimits, plc_limits
from agent.demo.sim.process import COUNTER_TAG, CYCLE_LABEL, PROCESS_TAGS, DriftStep, LineProcess

log = logging.getLogger(__name__)

NAMESPACE = "urn:factory-edge:sim"
TAG_NODE_NAMES = {
    "qc_result": "QC.Result", "qc_serial": "QC.Serial",
    "barrel_temp_1": "BarrelZone1.Temperature", "barrel_temp_2": "BarrelZone2.Temperature",
    "barrel_temp_3": "BarrelZone3.Temperature", "injection_pressure": "Injection.Pressure",
    "mould_temp": "Mould.Temperature", "screw_speed": "Screw.Speed",
    "cycle_time": "Cycle.Time", "cushion": "Injection.Cushion", COUNTER_TAG: "PartCounter",
}


def node_id(tag: str, ns: int = 2) -> str:
    return f"ns={ns};s=Machine1.{TAG_NODE_NAMES[tag]}"


@dataclass
class SimOptions:
    opcua_port: int = 4840
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    qc_topic: str = "plant/line1/qc"
    # each part's measured cycle time, {"serial": N, "cycle_s": seconds}, sent with its QC
    # result (empty: not sent)
    cycle_topic: str = "plant/line1/cycle"
    qc_delay_s: float = 5.0  # simulated seconds between a part and its QC result
    cycle_s: float = 30.0  # simulated seconds per part
    speed: float = 1.0  # simulated seconds per wall second
    seed: int = 7
    drift: list[DriftStep] = field(default_factory=list)
    extra_vars: int = 0  # additional noise variables, for load tests
    # Basic256Sha256 SignAndEncrypt + Sign with this (certificate DER, private key PEM), and
    # user/password identities, to test the client's security settings against a real server
    certificate: tuple[Path, Path] | None = None
    users: dict[str, str] | None = None
    # with a certificate: trust only the client certificates in this directory (as a PLC does:
    # BadCertificateUntrusted otherwise) and check their URI against the ApplicationUri
    trusted_clients: Path | None = None
    limits: PlcLimits | None = None  # what a real PLC limits (items per subscription, queues)


class _PasswordUsers:
    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> Any:
        from asyncua.crypto.permission_rules import User, UserRole

        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User)
        return None


class SimulatedLine:
    """Runs the machine in (compressed) time: each cycle writes the process values, then the
    part counter, then schedules the QC result for that serial."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.process = LineProcess(seed=options.seed, drift=options.drift)
        self.server = Server(user_manager=_PasswordUsers(options.users) if options.users else None)
        self.parts = 0
        self.sim_time = 0.0
        self.results: dict[int, bool] = {}
        self.cycle_times: dict[int, float] = {}  # serial -> measured cycle time, seconds
        self.ns = 2
        self._vars: dict[str, Any] = {}  # asyncua Node objects
        self.extra_nodes: list[Any] = []
        self.writeback_nodes: dict[str, Any] = {}
        self.qc_nodes: dict[str, Any] = {}
        self._qc_queue: asyncio.Queue[tuple[float, int, bool]] = asyncio.Queue()
        self.qc_published = 0
        self.cycle_published = 0
        self._limits: Any = None

    async def __aenter__(self) -> SimulatedLine:
        await self.server.init()
        self.server.set_endpoint(f"opc.tcp://127.0.0.1:{self.options.opcua_port}/sim")
        self.server.set_server_name("factory-edge simulated moulding machine")
        if self.options.certificate is None:
            self.server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        else:
            cert, key = self.options.certificate
            await self.server.load_certificate(str(cert))
            await self.server.load_private_key(str(key))
            self.server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                                             ua.SecurityPolicyType.Basic256Sha256_Sign])
            if self.options.trusted_clients is not None:
                await self._trust_clients(self.options.trusted_clients)
        if self.options.users:
            self.server.set_security_IDs(["Username"])
        self.ns = await self.server.register_namespace(NAMESPACE)
        machine = await self.server.nodes.objects.add_object(
            ua.NodeId("Machine1", self.ns), ua.QualifiedName("Machine1", self.ns))
        for tag in [*PROCESS_TAGS, COUNTER_TAG]:
            initial = ua.Variant(0, ua.VariantType.Int64) if tag == COUNTER_TAG else 0.0
            var = await machine.add_variable(
                ua.NodeId(f"Machine1.{TAG_NODE_NAMES[tag]}", self.ns),
                ua.QualifiedName(TAG_NODE_NAMES[tag], self.ns), initial)
            self._vars[tag] = var
        # where a gateway may write its verdict back (the PLC could divert the part on NOK)
        for name, initial in (("Edge.PredictedClass", ua.Variant(-1, ua.VariantType.Int32)),
                              ("Edge.NokScore", ua.Variant(-1.0, ua.VariantType.Double))):
            var = await machine.add_variable(ua.NodeId(f"Machine1.{name}", self.ns),
                                             ua.QualifiedName(name, self.ns), initial)
            await var.set_writable()
            self.writeback_nodes[name] = var
        for name in ("QC.Result", "QC.Serial"):
            self.qc_nodes[name] = await machine.add_variable(
                ua.NodeId(f"Machine1.{name}", self.ns), ua.QualifiedName(name, self.ns),
                ua.Variant(0, ua.VariantType.Int64))
        for i in range(self.options.extra_vars):
            var = await machine.add_variable(ua.NodeId(f"Machine1.Extra{i}", self.ns),
                                             ua.QualifiedName(f"Extra{i}", self.ns), 0.0)
            self.extra_nodes.append(var)
        if self.options.limits is not None:
            self._limits = plc_limits(self.options.limits)
            self._limits.__enter__()
            cap = self.options.limits.max_items_per_subscription
            if cap is not None:  # advertised as a real server does (ServerCapabilities)
                await self.server.write_attribute_value(
                    ua.NodeId(24104), ua.DataValue(ua.Variant(cap, ua.VariantType.UInt32)))
        try:
            await self.server.start()
        except BaseException:
            if self._limits is not None:  # never leave asyncua patched behind a failed start
                self._limits.__exit__(None, None, None)
                self._limits = None
            raise
        return self

    async def _trust_clients(self, directory: Path) -> None:
        from asyncua.crypto.truststore import TrustStore
        from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

        options = CertificateValidatorOptions
        check = CertificateValidator(options.TIME_RANGE | options.URI | options.PEER_CLIENT)

        async def validate(cert: Any, description: Any) -> None:
            await check.validate(cert, description)  # BadCertificateUriInvalid
            store = TrustStore([directory], [])
            if not await asyncio.to_thread(lambda: any(directory.iterdir())):
                raise _untrusted()
            await store.load()  # re-read at each session: a certificate copied in counts at once
            if not store.is_trusted(cert):
                raise _untrusted()

        self.server.set_certificate_validator(validate)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.server.stop()
        finally:
            if self._limits is not None:
                self._limits.__exit__(None, None, None)
                self._limits = None

    async def make_part(self) -> None:
        values, ok = self.process.part(self.sim_time)
        for tag in PROCESS_TAGS:
            await self.server.write_attribute_value(
                self._vars[tag].nodeid, ua.DataValue(ua.Variant(values[tag], ua.VariantType.Double),
                                                     SourceTimestamp=_now()))
        self.parts += 1
        await self.server.write_attribute_value(
            self._vars[COUNTER_TAG].nodeid,
            ua.DataValue(ua.Variant(self.parts, ua.VariantType.Int64), SourceTimestamp=_now()))
        self.results[self.parts] = ok
        self.cycle_times[self.parts] = self.process.last_cycle_s
        due = time.monotonic() + self.options.qc_delay_s / self.options.speed
        self._qc_queue.put_nowait((due, self.parts, ok))

    async def run_machine(self, stop_after: int | None = None) -> None:
        period = self.options.cycle_s / self.options.speed
        next_at = time.monotonic()
        while stop_after is None or self.parts < stop_after:
            await self.make_part()
            self.sim_time += self.options.cycle_s
            # a machine that was held up (here: a busy process) does not make the parts it
            # missed in a burst: two parts in one OPC UA publishing interval would reach the
            # gateway as one sample of the newer part's values (tags keep only their newest
            # value), which no real moulding machine does to its PLC
            next_at = max(next_at + period, time.monotonic() + 0.8 * period)
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def run_qc_over_opcua(self) -> None:
        """The QC station as PLC tags: the verdict (1 OK, 0 NOK), then the serial it is for."""
        while True:
            due, serial, ok = await self._qc_queue.get()
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            for name, value in (("QC.Result", 1 if ok else 0), ("QC.Serial", serial)):
                await self.server.write_attribute_value(
                    self.qc_nodes[name].nodeid,
                    ua.DataValue(ua.Variant(value, ua.VariantType.Int64), SourceTimestamp=_now()))
            self.qc_published += 1

    async def run_qc_station(self) -> None:
        """Publish each part's OK/NOK by serial once its delay has passed; reconnects."""
        while True:
            try:
                async with aiomqtt.Client(self.options.mqtt_host, self.options.mqtt_port,
                                          identifier=f"sim-qc-{self.options.opcua_port}") as client:
                    while True:
                        due, serial, ok = await self._qc_queue.get()
                        await asyncio.sleep(max(0.0, due - time.monotonic()))
                        payload = {"serial": serial, "result": "OK" if ok else "NOK",
                                   "ts": time.time()}
                        await client.publish(self.options.qc_topic, json.dumps(payload), qos=1)
                        self.qc_published += 1
                        if self.options.cycle_topic:
                            cycle = {"serial": serial, CYCLE_LABEL: self.cycle_times[serial],
                                     "ts": payload["ts"]}
                            await client.publish(self.options.cycle_topic, json.dumps(cycle), qos=1)
                            self.cycle_published += 1
            except aiomqtt.MqttError as exc:
                log.warning("sim QC station: broker unreachable (%s); retrying", exc)
                await asyncio.sleep(1.0)


def _untrusted() -> Exception:
    from asyncua.common.utils import ServiceError

    error: Exception = ServiceError(ua.StatusCodes.BadCertificateUntrusted)
    return error


def _now() -> Any:
    import datetime as dt

    return dt.datetime.now(dt.UTC)
