"""Local HTTP endpoint for operators and Prometheus: /healthz, /readyz, /metrics.

Metrics are read from the agent's own counters at scrape time (a custom collector), so the hot
path pays nothing for them except the inference latency histogram.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily

from agent.aio.links import SourceStatus, links
from agent.monitor.alarms import LEVELS

if TYPE_CHECKING:
    from agent.service.agent import Agent

log = logging.getLogger(__name__)

MAX_REQUEST = 8192


def describe(link: SourceStatus) -> str:
    why = link.last_error or "connecting"
    return f"{link.name.replace('-', ' ')} ({link.kind}) down: {why}" + (
        f" [{link.reason}]" if link.reason else "")


class AgentCollector:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        a = self.agent
        readings = CounterMetricFamily("edge_readings", "Tag readings received", labels=["source"])
        malformed = CounterMetricFamily("edge_malformed", "Malformed payloads/values", labels=["source"])
        connected = GaugeMetricFamily("edge_source_connected", "1 when connected", labels=["source"])
        reconnects = CounterMetricFamily("edge_source_reconnects", "Reconnect attempts", labels=["source"])
        for s in a.sources:
            st = s.status
            readings.add_metric([st.name], st.readings)
            malformed.add_metric([st.name], st.malformed)
            connected.add_metric([st.name], 1.0 if st.connected else 0.0)
            reconnects.add_metric([st.name], st.reconnects)
        yield from (readings, malformed, connected, reconnects)
        yield from self._links()
        yield from self._models()
        yield CounterMetricFamily("edge_readings_offered", "Readings the sources offered",
                                  value=a.offered)
        recorder = a.recorder.snapshot()
        yield CounterMetricFamily("edge_readings_recorded", "Readings written to the outbox",
                                  value=recorder.readings_recorded)
        yield CounterMetricFamily("edge_dropped_readings", "Readings dropped: a queue was full",
                                  value=a.dropped_readings)
        channel_drops = CounterMetricFamily("edge_channel_dropped", "Items a full pipeline channel "
                                            "dropped", labels=["channel"])
        depth = GaugeMetricFamily("edge_channel_depth", "Items waiting in a pipeline channel",
                                  labels=["channel"])
        for ch in [u.channel.snapshot() for u in a.units]:
            channel_drops.add_metric([ch.name], ch.dropped)
            depth.add_metric([ch.name], ch.depth)
        channel_drops.add_metric(["recorder:readings"], recorder.readings_dropped)
        yield from (channel_drops, depth)
        bad = CounterMetricFamily("edge_bad_readings", "Readings marked bad at the intake (limits:)",
                                  labels=["reason"])
        for reason, count in a.intake.bad.items():
            bad.add_metric([reason], count)
        yield bad
        yield from self._counters()
        if a.publisher is not None:
            yield CounterMetricFamily("edge_mqtt_published", "Predictions published",
                                      value=a.publisher.published)
            yield CounterMetricFamily("edge_mqtt_dropped", "Predictions dropped from the output queue",
                                      value=a.publisher.dropped)
        stats = a.outbox_stats
        if stats is not None:
            yield GaugeMetricFamily("edge_outbox_records", "Records waiting", value=stats.depth)
            yield GaugeMetricFamily("edge_outbox_bytes", "Bytes waiting", value=stats.bytes)
            evicted = CounterMetricFamily("edge_outbox_evicted", "Items evicted by the disk budget",
                                          labels=["kind"])
            for kind, count in stats.evicted_by_kind.items():
                evicted.add_metric([kind], count)
            yield evicted
            yield GaugeMetricFamily("edge_outbox_refused", "Records the hub refused as malformed, "
                                    "kept aside in the outbox", value=stats.refused_records)
        yield from self._hub()
        yield from self._monitor()

    def _models(self) -> Iterator[Any]:
        """Series per model carry a `model` label."""
        units = self.agent.units
        m = ["model"]
        fams = {
            "samples": CounterMetricFamily("edge_samples", "Valid samples built", labels=m),
            "predictions": CounterMetricFamily("edge_predictions", "Predictions made", labels=m),
            "inference_errors": CounterMetricFamily("edge_inference_errors",
                                                    "Failed inference batches", labels=m),
            "parts_missed": CounterMetricFamily("edge_parts_missed",
                                                "Parts the trigger counter skipped", labels=m),
            "labels": CounterMetricFamily("edge_labels", "Ground-truth labels received", labels=m),
            "unknown_labels": CounterMetricFamily("edge_unknown_labels", "Labels none of the "
                                                  "model's classes (never training samples)",
                                                  labels=m),
        }
        invalid = CounterMetricFamily("edge_invalid_samples", "Invalid samples",
                                      labels=["model", "reason"])
        info = InfoMetricFamily("edge_model", "Active model version", labels=m)
        for u in units:
            figures = u.metrics()
            for key, fam in fams.items():
                fam.add_metric([u.name], figures[key])
            for reason, count in figures["invalid_samples"].items():
                invalid.add_metric([u.name, reason], count)
            if u.model is not None:
                b = u.model.bundle
                info.add_metric([u.name], {"name": b.manifest.name, "version": b.manifest.version,
                                           "sha256": b.sha256})
        yield from fams.values()
        yield invalid
        yield info

    def _counters(self) -> Iterator[Any]:
        """What the Sparkplug links refused or asked for (their counters())."""
        fams: dict[str, CounterMetricFamily] = {}
        for src in self.agent.sources:
            counters = getattr(src, "counters", None)
            for key, value in (counters() if counters else {}).items():
                fam = fams.get(key)
                if fam is None:
                    fam = fams[key] = CounterMetricFamily(
                        f"edge_sparkplug_{key}", f"Sparkplug source: {key.replace('_', ' ')}",
                        labels=["source"])
                fam.add_metric([src.status.name], value)
        yield from fams.values()
        out = self.agent.sparkplug_out
        if out is not None:
            yield CounterMetricFamily("edge_sparkplug_out_rebirth_requests", "Rebirth requests a "
                                      "host application sent", value=out.counters()["rebirth_requests"])

    def _links(self) -> Iterator[Any]:
        labels = ["link", "kind", "role"]
        up = GaugeMetricFamily("edge_link_connected", "1 when the link is up", labels=labels)
        down = GaugeMetricFamily("edge_link_down_reason", "1 for the reason a link is down "
                                 "(an OPC UA status name, connection_refused, ...)",
                                 labels=[*labels, "reason"])
        attempts = CounterMetricFamily("edge_link_attempts", "Connection attempts, probes included",
                                       labels=labels)
        dropped = CounterMetricFamily("edge_link_dropped", "Items a link dropped", labels=labels)
        for link in links(self.agent):
            key = [link.name, link.kind, link.role]
            up.add_metric(key, 1.0 if link.connected else 0.0)
            if not link.connected:
                down.add_metric([*key, link.reason or "connecting"], 1.0)
            attempts.add_metric(key, link.attempts)
            dropped.add_metric(key, link.dropped)
        yield from (up, down, attempts, dropped)

    def _hub(self) -> Iterator[Any]:
        a = self.agent
        links = [(name, link.status) for name, link in (("upload", a.uploader), ("sync", a.sync))
                 if link is not None]
        if not links:
            return
        up = GaugeMetricFamily("edge_hub_connected", "1 when the last exchange with the hub worked",
                               labels=["link"])
        for name, status in links:
            up.add_metric([name], 1.0 if status.connected else 0.0)
        yield up
        if a.uploader is not None:
            yield CounterMetricFamily("edge_hub_uploaded_records", "Outbox records the hub acknowledged",
                                      value=a.uploader.uploaded_records)
        if a.sync is not None and a.sync.last_success is not None:
            yield GaugeMetricFamily("edge_hub_sync_last_success_timestamp_seconds",
                                    "When the desired state was last fetched", value=a.sync.last_success)
        m = ["model"]
        switches = CounterMetricFamily("edge_model_switches", "Model activations and rollbacks", labels=m)
        rejected = GaugeMetricFamily("edge_model_rejected", "Versions rejected on this gateway", labels=m)
        watching = GaugeMetricFamily("edge_model_watch_active", "1 while a new version is watched",
                                     labels=m)
        for u in a.units:
            lc = u.lifecycle
            if lc is None:
                continue
            switches.add_metric([u.name], lc.switches)
            rejected.add_metric([u.name], len(lc.store.state.rejected))
            watching.add_metric([u.name], 1.0 if lc.watch_until is not None else 0.0)
        yield from (switches, rejected, watching)

    def _monitor(self) -> Iterator[Any]:
        psi = GaugeMetricFamily("edge_drift_psi", "PSI of the window", labels=["model", "feature"])
        cusum = GaugeMetricFamily("edge_drift_cusum", "CUSUM statistic", labels=["model", "feature"])
        state = GaugeMetricFamily("edge_alarm_state", "0 ok, 1 warning, 2 alarm",
                                  labels=["model", "kind", "detector", "feature"])
        health = GaugeMetricFamily("edge_model_health", "Worst alarm level of the active model",
                                   labels=["model"])
        coverage = GaugeMetricFamily("edge_label_coverage", "Share of predictions with a label",
                                     labels=["model"])
        accuracy = GaugeMetricFamily("edge_rolling_accuracy", "Accuracy on recent labels",
                                     labels=["model"])
        for u in self.agent.units:
            watch = u.watch
            if watch is None:
                continue
            m, name = watch.monitor, u.name
            for feature, value in zip([*m.names, "score"], m.psi.last.tolist(), strict=True):
                psi.add_metric([name, feature], value)
            for feature, value in zip(m.cusum_columns, m.cusum.score.tolist(), strict=True):
                cusum.add_metric([name, feature or "pca"], value)
            for (kind, detector, feature), level in m.book.states.items():
                state.add_metric([name, kind, detector, feature or ""], LEVELS[level])
            health.add_metric([name], LEVELS[m.book.worst()])
            cov = watch.labels.figures().get("coverage")
            if cov is not None:
                coverage.add_metric([name], cov)
            if m.correct.count:
                accuracy.add_metric([name], m.correct.mean)
        yield from (psi, cusum, state, health, coverage, accuracy)


class HealthServer:
    def __init__(self, agent: Agent, host: str, port: int) -> None:
        self.agent = agent
        self.host, self.port = host, port
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AgentCollector(agent))
        self.latency = Histogram("edge_inference_seconds", "Inference time per batch",
                                 labelnames=["model"], registry=self.registry,
                                 buckets=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 1.0))
        self._server: asyncio.Server | None = None

    async def run(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        sock = self._server.sockets[0].getsockname()
        self.port = int(sock[1])
        log.info("health and metrics on http://%s:%d (/healthz /readyz /metrics)", self.host, self.port)
        async with self._server:
            await self._server.serve_forever()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head[:MAX_REQUEST].split(b" ", 2)
            method, path = (parts[0], parts[1].decode(errors="replace")) if len(parts) > 1 else (b"", "")
            status, ctype, body = self._route(method, path.split("?", 1)[0])
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            status, ctype, body = 400, "text/plain", b"bad request\n"
        try:
            writer.write(f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: {ctype}\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except ConnectionError:
            pass  # the client went away; nothing to tell it
        finally:
            writer.close()

    def _route(self, method: bytes, path: str) -> tuple[int, str, bytes]:
        if method not in (b"GET", b"HEAD"):
            return 405, "text/plain", b"only GET\n"
        if path == "/healthz":
            return 200, "text/plain", b"ok\n"
        if path == "/readyz":
            ready, reasons = self.readiness()
            doc = json.dumps({"ready": ready, "reasons": reasons, "degraded": self.degraded(),
                              "models": self.models()}).encode() + b"\n"
            return (200 if ready else 503), "application/json", doc
        if path == "/metrics":
            return 200, "text/plain; version=0.0.4; charset=utf-8", generate_latest(self.registry)
        return 404, "text/plain", b"try /healthz, /readyz or /metrics\n"

    def readiness(self) -> tuple[bool, list[str]]:
        a = self.agent
        reasons = []
        if a.outbox is None:
            reasons.append("outbox not open")
        for u in a.units:
            if u.model is None:
                reasons.append(f"model {u.name}: no model: {u.model_error}")
        for link in links(a):
            if link.role == "source" and not link.connected:
                why = link.last_error or "connecting"
                reasons.append(f"source {link.name} not connected ({why})"
                               + (f" [{link.reason}]" if link.reason else ""))
        return not reasons, reasons

    def models(self) -> dict[str, dict[str, Any]]:
        """/readyz per model: does it serve the line, and what it runs."""
        out = {}
        for u in self.agent.units:
            lc = u.lifecycle
            out[u.name] = {"ready": u.model is not None,
                           "version": u.model.version if u.model else None,
                           "reason": None if u.model else u.model_error,
                           "health": u.health(),
                           "under_watch": bool(lc and lc.watch_until is not None)}
        return out

    def degraded(self) -> list[str]:
        """Worth knowing, but the agent serves the line without them: outputs, labels and the
        hub (the outbox keeps everything until they are back)."""
        a = self.agent
        out = [describe(link) for link in links(a) if link.role != "source" and not link.connected]
        for u in a.units:
            lc = u.lifecycle
            if lc is not None and lc.watch_until is not None and u.model is not None:
                out.append(f"model {u.name} {u.model.version} under watch")
        return out


_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            503: "Service Unavailable"}
