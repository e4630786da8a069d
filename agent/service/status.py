"""edge-agent status: what the agent is doing, read from its state directory (works when the
agent is stopped too: the outbox figures come from the database itself)."""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

import sqlite_utils

from agent.config import AgentConfig
from agent.service.agent import read_status


def outbox_figures(cfg: AgentConfig) -> dict[str, Any] | None:
    path = cfg.outbox_path
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # never write to a live outbox
    db = sqlite_utils.Database(conn)
    try:
        records = db.table("records")
        depth = records.count
        items, size = db.execute(
            "SELECT COALESCE(SUM(items),0), COALESCE(SUM(nbytes),0) FROM records").fetchone()
        evicted = {row["kind"]: row["items"] for row in db.table("evicted").rows}
        refused = db.table("refused").count if db.table("refused").exists() else 0
    except sqlite3.Error:
        return None
    finally:
        conn.close()
    return {"depth": depth, "items": items, "bytes": size, "file_bytes": path.stat().st_size,
            "evicted_by_kind": evicted, "evicted_items": sum(evicted.values()), "refused": refused}


def when(ts: float | None, now: float | None = None) -> str:
    """A time an operator can place: date, time and how long ago."""
    if not ts:
        return "never"
    now = time.time() if now is None else now
    age = max(0.0, now - ts)
    if age < 120:
        ago = f"{age:.0f} s"
    elif age < 7200:
        ago = f"{age / 60:.0f} min"
    elif age < 172800:
        ago = f"{age / 3600:.1f} h"
    else:
        ago = f"{age / 86400:.1f} days"
    return f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(ts))} ({ago} ago)"


def _link_line(link: dict[str, Any], running: bool) -> str:
    up = bool(link.get("connected"))
    state = "connected" if up else "DISCONNECTED"
    if not running:
        state = f"was {state.lower()}"  # the last state the agent wrote, not the present
    since = link.get("connected_since") if up else link.get("changed_at")
    line = (f"{link['name']} ({link['kind']}): {state}"
            + (f" since {when(since)}" if since else ""))
    counts = [f"{link.get(k) or 0} {label}" for k, label in (
        ("readings", "readings"), ("malformed", "malformed"), ("dropped", "dropped"),
        ("attempts", "attempts")) if link.get(k)]
    if counts:
        line += ", " + ", ".join(counts)
    if not up and (link.get("reason") or link.get("last_error")):
        line += f"\n              [{link.get('reason') or 'error'}] {link.get('last_error') or ''}"
    return line


MODEL_KEYS = ("model", "model_error", "samples", "samples_per_s", "predictions", "labels",
              "invalid_samples", "dropped_readings", "parts_missed", "monitor", "lifecycle")


def print_status(cfg: AgentConfig, as_json: bool) -> int:
    status = read_status(cfg.state_dir) or {}
    outbox = outbox_figures(cfg)
    running = bool(status) and time.time() - status.get("updated", 0) < 10
    # an agent of the single-model release wrote one model at the top level
    models = status.get("models") or ({(status.get("model") or {}).get("name") or "model":
                                       {k: status.get(k) for k in MODEL_KEYS}} if status else {})
    report: dict[str, Any] = {"gateway_id": cfg.gateway_id, "state_dir": str(cfg.state_dir),
              "running": running,
              **{k: status.get(k) for k in (*MODEL_KEYS, "sources", "links", "updated", "started",
                                            "sync", "channels", "bad_readings")},
              "models": models, "outbox": outbox}
    if as_json:
        print(json.dumps(report, indent=1))
        return 0
    if running:
        print(f"gateway       {cfg.gateway_id} (running since {when(report['started'])})")
    elif status:
        print(f"gateway       {cfg.gateway_id} (NOT RUNNING; last seen {when(report['updated'])}: "
              "what follows is its state then)")
    else:
        print(f"gateway       {cfg.gateway_id} (NOT RUNNING; it never wrote {cfg.state_dir}/status.json)")
    for link in report["links"] or report["sources"] or []:
        print(f"{link.get('role', 'source'):14}{_link_line(link, running)}")
    if not models:
        print("model         none")
    for name, doc in models.items():  # one block per model
        _print_model(name, doc)
    sync: dict[str, Any] | None = report["sync"]
    if sync:
        last = sync.get("last_success")
        reach = "reachable" if sync.get("connected") else "UNREACHABLE"
        print(f"hub           {reach if running else 'was ' + reach.lower()}, last sync "
              f"{when(last)}"
              + (f"  [{sync['last_error']}]" if sync.get("last_error") else ""))
    if outbox:
        print(f"outbox        {outbox['depth']} records ({outbox['items']} items), "
              f"{outbox['bytes']} bytes, evicted {outbox['evicted_items']}"
              + (f", REFUSED by the hub {outbox['refused']} (kept in the outbox's 'refused' table)"
                 if outbox.get("refused") else ""))
    else:
        print("outbox        not created yet")
    return 0


def _print_model(name: str, report: dict[str, Any]) -> None:
    model: dict[str, Any] | None = report.get("model")
    print(f"model {name}")
    print(f"  version     {model['name'] + ' ' + model['version'] if model else 'none'}"
          + (f"  [{report['model_error']}]" if report.get("model_error") else ""))
    print(f"  samples     {report.get('samples') or 0} ({report.get('samples_per_s') or 0}/s), "
          f"predictions {report.get('predictions') or 0}, labels {report.get('labels') or 0}, "
          f"parts missed {report.get('parts_missed') or 0}, readings dropped "
          f"{report.get('dropped_readings') or 0}")
    monitor: dict[str, Any] | None = report.get("monitor")
    if monitor:
        join = monitor.get("labels_join") or {}
        print(f"  health      {str(monitor.get('alarm_state', 'ok')).upper()}, "
              f"{len(monitor.get('alarms') or [])} active, rolling accuracy "
              f"{monitor.get('rolling_accuracy')}, expected (CBPE) {monitor.get('cbpe_expected_accuracy')}")
        if monitor.get("rolling_per_class"):  # what matters for a classifier, not accuracy alone
            recall = ", ".join(f"{c} {v.get('recall')}" for c, v in monitor["rolling_per_class"].items())
            print(f"  per class   balanced accuracy {monitor.get('rolling_balanced_accuracy')}, recall "
                  f"{recall}, cost {monitor.get('rolling_cost_per_part')} per part")
        print(f"  labels      coverage {join.get('coverage')}, mean latency {join.get('mean_latency_s')} s, "
              f"{join.get('pending')} waiting")
        incidents = monitor.get("incidents") or {}
        for inc in incidents.get("open") or []:
            print(f"  incident    {inc['id']} {inc['level'].upper()} {inc['state']}"
                  + (f", acknowledged by {inc['acknowledged_by']}" if inc.get("acknowledged_by") else "")
                  + (", shelved" if inc.get("shelved_until") else "")
                  + f": {', '.join(inc['detectors'])}; {inc['notifications']} notification(s)")
        if monitor.get("budget"):
            print(f"  budget      {monitor['budget']}")
    lifecycle: dict[str, Any] | None = report.get("lifecycle")
    if lifecycle:
        watch, shadow = lifecycle.get("watch"), lifecycle.get("shadow")
        if watch:
            against = (watch.get("against") or {}).get("version", "-")
            print(f"  watch       {watch['version']} against {against} until "
                  f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(watch['until']))}: "
                  f"{_comparison(watch.get('comparison'))}")
        if shadow:
            print(f"  shadow      {shadow['version']}: {_comparison(shadow.get('comparison'))}")
        for r in (lifecycle.get("rejected") or [])[-3:]:
            print(f"  rejected    {r.get('version')}: {r.get('reason')}")


def _comparison(c: dict[str, Any] | None) -> str:
    if not c:
        return "no side-by-side comparison"
    if "candidate_accuracy" in c:
        acc = f"accuracy {c.get('candidate_accuracy')} vs {c.get('active_accuracy')}"
    elif "candidate_mae" in c:
        acc = f"MAE {c.get('candidate_mae')} vs {c.get('active_mae')}"
    else:
        acc = "no labels yet"
    return (f"{c.get('labelled', 0)} labelled, {acc}, agreement {c.get('agreement')}, p99 "
            f"{c.get('p99_candidate_ms')} vs {c.get('p99_active_ms')} ms")
