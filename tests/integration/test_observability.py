"""What plants watch the fleet with, shipped in packaging/: the Prometheus alert rules pass
`promtool check rules` and fire in promtool's own rule tests; every metric the Grafana
dashboard and the rules name exists on a live agent's /metrics (an agent with its source, model,
labels, MQTT output and hub link, started here) or on a live hub's."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from hub.registry import publish
from hub.rollouts import deploy
from hub.server import HubServer
from hub.storage import add_gateway
from tests.helpers.hubtest import agent_config
from tests.helpers.running import http_get, running_agent, wait_for

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "packaging" / "prometheus" / "edge-alerts.yml"
DASHBOARD = ROOT / "packaging" / "grafana" / "edge-agents.json"
PROMTOOL = shutil.which("promtool")

# PromQL words that are not metric names
_PROMQL = {"sum", "avg", "min", "max", "count", "by", "without", "rate", "irate", "increase", "delta",
           "deriv", "histogram_quantile", "time", "and", "or", "unless", "on", "ignoring",
           "group_left", "group_right", "offset", "bool", "label_values", "abs", "clamp_min"}
_SUFFIXES = ("_total", "_bucket", "_count", "_sum", "_created", "_info")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r"label_values\(([^,)]+),[^)]*\)", r"\1", expr)  # Grafana's: (metric, label)
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # strings
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {w for w in words if w not in _PROMQL and not re.fullmatch(r"\d+[smhd]?", w)}


def base(name: str) -> str:
    for suffix in _SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def exported(metrics_text: str) -> set[str]:
    """Family and sample names, each also without its type suffix."""
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics_text):
        names |= {family.name, base(family.name)}
        names |= {s.name for s in family.samples} | {base(s.name) for s in family.samples}
    return names


def dashboard_exprs() -> list[str]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["query"]["query"] for v in doc["templating"]["list"] if isinstance(v.get("query"), dict)]
    return exprs


def rule_exprs() -> list[str]:
    return [r["expr"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def test_metric_names_are_read_from_promql() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (instance, le) (rate(edge_x_bucket{a="b"}[5m])))') \
        == {"edge_x_bucket"}
    assert metric_names("deriv(edge_outbox_records[15m]) > 0 and up == 0") == {"edge_outbox_records", "up"}
    assert metric_names("label_values(edge_readings_total, instance)") == {"edge_readings_total"}


def test_promtool_checks_the_shipped_rules_and_they_fire(tmp_path: Path) -> None:
    if PROMTOOL is None:
        if os.environ.get("EDGE_REQUIRE_PROMTOOL"):
            pytest.fail("promtool is required in CI (apt-get install prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    checked = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout
    cases = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": [{
        "interval": "1m",
        "input_series": [
            {"series": 'edge_source_connected{instance="gw1:9100",job="edge-agent",source="plc"}',
             "values": "1 1 0 0 0 0"},
            {"series": 'up{instance="gw2:9100",job="edge-agent"}', "values": "1 0 0 0 0 0"},
            {"series": 'edge_model_rejected{instance="gw1:9100",job="edge-agent"}', "values": "0 0 1 1 1 1"},
            {"series": 'edge_hub_jobs_total{instance="hub:8080",job="edge-hub",task="retrain",'
                       'outcome="failed"}',
             "values": "0 0 1 1 1 1"}],
        "alert_rule_test": [
            {"eval_time": "5m", "alertname": "EdgeSourceDisconnected", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "gw1:9100", "job": "edge-agent",
                               "source": "plc"},
                "exp_annotations": {
                    "summary": "Source plc on gw1:9100 is disconnected",
                    "description": "The agent has not been connected to its source plc for a minute "
                                   "(PLC, OPC UA server or MQTT broker). /readyz names the reason."}}]},
            {"eval_time": "1m", "alertname": "EdgeSourceDisconnected", "exp_alerts": []},
            {"eval_time": "5m", "alertname": "EdgeAgentDown", "exp_alerts": [{
                "exp_labels": {"severity": "critical", "instance": "gw2:9100", "job": "edge-agent"},
                "exp_annotations": {
                    "summary": "Edge agent gw2:9100 is down",
                    "description": "Prometheus has not scraped gw2:9100 for 2 minutes: the agent, its "
                                   "machine or the network to it is away. The line gets no predictions "
                                   "from it."}}]},
            {"eval_time": "4m", "alertname": "EdgeModelRolledBack", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "instance": "gw1:9100", "job": "edge-agent"},
                "exp_annotations": {
                    "summary": "gw1:9100 rolled a model version back",
                    "description": "A new version was rejected on this gateway within the last 15 "
                                   "minutes (failed its checks or regressed while watched); the previous "
                                   "version runs. edge-hub deployments says which."}}]},
            {"eval_time": "4m", "alertname": "EdgeHubJobFailures", "exp_alerts": [{
                "exp_labels": {"severity": "warning", "task": "retrain"},
                "exp_annotations": {
                    "summary": "Hub job retrain failed",
                    "description": "A background job failed in the last 15 minutes; its reason is in "
                                   "the hub's history (edge-hub history, event job_failed)."}}]}]}]}
    spec = tmp_path / "alerts-test.yml"
    spec.write_text(yaml.safe_dump(cases, sort_keys=False))
    tested = subprocess.run([PROMTOOL, "test", "rules", str(spec)], capture_output=True, text=True,
                            timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr


async def test_every_metric_of_the_dashboard_and_rules_is_exported_by_a_live_agent_or_hub(
        hub: HubServer, hub_db: Engine, line: Any, broker: Any, trained: dict[str, Path],
        tmp_path: Path) -> None:
    token = add_gateway(hub_db, "gw-grafana")
    publish(hub_db, hub.data, trained["bundle"], [trained["pub"]])
    deploy(hub_db, "moulding-nok", "1.0.0", "gw-grafana", "immediate")
    cfg = agent_config(tmp_path / "state", line, hub, token, broker, "gw-grafana", trained)
    cfg["outputs"] = {"mqtt": {"broker": {"host": "127.0.0.1", "port": broker.port}}}
    async with running_agent(cfg) as agent:
        await wait_for(lambda: agent.model is not None, 30, "the deployed model active")
        await line.run_machine(stop_after=120)
        await wait_for(lambda: agent.labels_received >= 20, 30, "QC labels")
        await wait_for(lambda: agent.sync is not None and agent.sync.last_success is not None, 10,
                       "a desired-state fetch")
        assert agent.health_server is not None
        status, body = await http_get(agent.health_server.port, "/metrics")
    assert status == 200
    on_agent = exported(body)
    wanted = set().union(*map(metric_names, dashboard_exprs()))
    assert len(wanted) >= 15
    missing = sorted(m for m in wanted if m not in on_agent and base(m) not in on_agent)
    assert not missing, f"the dashboard names metrics the agent does not export: {missing}"

    async with httpx.AsyncClient(timeout=10) as client:
        on_hub = exported((await client.get(f"{hub.url}/metrics")).text)
    named = set().union(*map(metric_names, rule_exprs())) - {"up"}  # up: Prometheus's own
    missing = sorted(m for m in named if not {m, base(m)} & (on_agent | on_hub))
    assert not missing, f"the alert rules name metrics nobody exports: {missing}"
    assert {"edge_hub_jobs_total", "edge_hub_job_queue"} <= named
