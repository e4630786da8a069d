"""A model card for every version, from what the hub knows: the manifest (inputs, output,
holdout metrics, lineage), the dataset it was trained on, how it has done on the gateways since
deployment, its drift alarms, and its history (deployments, promotions, approvals, rollbacks)."""

from __future__ import annotations

import html
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.registry import HubError
from hub.storage import AgentAudit, Dataset, GatewayStatus, HistoryEntry, ModelVersion


def card_data(engine: Engine, model: str, version: str) -> dict[str, Any]:
    with Session(engine) as s:
        mv = s.scalars(select(ModelVersion).where(ModelVersion.name == model,
                                                  ModelVersion.version == version)).first()
        if mv is None:
            raise HubError(f"{model} {version} is not published")
        m = dict(mv.manifest)
        lineage = dict(m.get("lineage") or {})
        dataset = s.get(Dataset, lineage.get("dataset_sha256") or "")
        history = [{"at": h.at, "event": h.event, "gateway": h.gateway_id, "detail": h.detail,
                    "actor": h.actor}
                   for h in s.scalars(select(HistoryEntry).where(HistoryEntry.model == model,
                                                                 HistoryEntry.version == version)
                                      .order_by(HistoryEntry.id))]
        field = []
        for st in s.scalars(select(GatewayStatus)):
            active = (st.report or {}).get("active") or {}
            if active.get("name") == model and active.get("version") == version:
                mon = ((st.report.get("metrics") or {}).get("monitor") or {})
                field.append({"gateway": st.gateway_id, "since": active.get("since"),
                              "rolling_accuracy": mon.get("rolling_accuracy"),
                              "labelled": (mon.get("labels_join") or {}).get("labelled"),
                              "health": st.report.get("health")})
        alarms = [a.entry for a in s.scalars(select(AgentAudit).order_by(AgentAudit.id))
                  if a.entry.get("action") == "alarm" and a.entry.get("subject") == f"{model} {version}"]
    return {"model": model, "version": version, "sha256": mv.sha256, "created": mv.created,
            "manifest": m, "lineage": lineage,
            "dataset": {"sha256": dataset.sha256, "rows": dataset.rows, "first_ts": dataset.first_ts,
                        "last_ts": dataset.last_ts, "gateways": dataset.gateways} if dataset else None,
            "history": history, "field": field, "alarms": alarms[-50:]}


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(ts))) + " UTC" if ts else "-"


def card_markdown(d: dict[str, Any]) -> str:
    m, lin = d["manifest"], d["lineage"]
    out = m.get("output") or {}
    classes = ", ".join(out.get("classes") or []) or "a number (regression)"
    lines = [f"# Model card: {d['model']} {d['version']}", "",
             f"Bundle sha256 `{d['sha256']}`, published {_when(d['created'])}.", "",
             "## Intended use", "",
             f"Predicts {classes} for each part from {len(m.get('inputs') or [])} process values on "
             f"the line, at the edge gateway; the monitored class is "
             f"{out.get('positive_class') or '-'}. Not for use outside the operating window of its "
             "training data (see the reference profile and drift history below).", "",
             "## Inputs", "", "| feature | source tag | kind |", "| --- | --- | --- |"]
    lines += [f"| {i['name']} | {i['tag']} | {i.get('kind', 'numeric')} |" for i in m.get("inputs") or []]
    td = lin.get("training_data") or {}
    lines += ["", "## Training data", ""]
    if d["dataset"]:
        ds = d["dataset"]
        lines.append(f"Dataset `{ds['sha256']}`: {ds['rows']} labelled samples from "
                     f"{', '.join(ds['gateways'])}, {_when(ds['first_ts'])} to {_when(ds['last_ts'])}.")
    lines.append(f"Training file sha256 `{td.get('sha256', '-')}`, {td.get('rows', '-')} rows.")
    lines += ["", "## Metrics on holdout", ""]
    holdout = (m.get("metrics") or {}).get("holdout") or {}
    lines += [f"- {k}: {v}" for k, v in holdout.items()] or ["- none recorded"]
    lines += ["", "## Since deployment", ""]
    lines += [f"- {f['gateway']}: since {_when(f['since'])}, rolling accuracy {f['rolling_accuracy']}, "
              f"{f['labelled']} labelled outcomes, health {f['health']}" for f in d["field"]] or [
        "- not active on any gateway now"]
    lines += ["", "## Drift history", ""]
    lines += [f"- {_when(a.get('at'))}: {a.get('why')} (score {a.get('detail', {}).get('score')})"
              for a in d["alarms"]] or ["- no alarms reported"]
    lines += ["", "## Lineage", "",
              f"- parent version: {lin.get('parent_version') or '-'}",
              f"- reason: {lin.get('reason') or '-'}",
              f"- trigger: {lin.get('trigger') or '-'}",
              f"- trainer: {lin.get('trainer') or '-'} (settings {lin.get('trainer_settings') or '-'})",
              f"- code version: {lin.get('code_version') or lin.get('builder') or '-'}",
              f"- seed: {lin.get('seed', '-')}", "",
              "## History and approvals", ""]
    lines += [f"- {_when(h['at'])} {h['event']}{' on ' + h['gateway'] if h['gateway'] else ''}"
              f" by {h['actor']}{': ' + h['detail'] if h['detail'] else ''}" for h in d["history"]]
    return "\n".join(lines) + "\n"


def card_html(d: dict[str, Any]) -> str:
    """The same card as a standalone page (no scripts, no external resources)."""
    body = []
    in_table = False
    for line in card_markdown(d).splitlines():
        esc = html.escape(line)
        if line.startswith("| ") and not line.startswith("| ---"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if not in_table:
                body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in cells) + "</tr>")
                in_table = True
            else:
                body.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
            continue
        if line.startswith("| ---"):
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("# "):
            body.append(f"<h1>{esc[2:]}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{esc[3:]}</h2>")
        elif line.startswith("- "):
            body.append(f"<li>{esc[2:]}</li>")
        elif line:
            body.append(f"<p>{esc}</p>")
    if in_table:
        body.append("</table>")
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .6em}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Model card {html.escape(d['model'])} "
            f"{html.escape(d['version'])}</title><style>{style}</style></head><body>"
            + "\n".join(body) + "</body></html>\n")
