"""A model card for every version, from what the hub knows: the manifest (inputs, output,
holdout metrics per class, cost matrix, lineage), the dataset it was trained on, how it has done
on the gateways since deployment (labelled outcomes of this version only, counted by the agent
from its activation, per class with 95% intervals), its drift alarms, and its history
(deployments, promotions, approvals, rollbacks)."""

from __future__ import annotations

import html
import time
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.models.scoring import CostError, CostMatrix, classifier_scores
from hub import field as field_reports
from hub.fleet import retention
from hub.registry import HubError
from hub.reports import model_reports
from hub.storage import AgentAudit, Dataset, HistoryEntry, ModelPolicy, ModelVersion


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
        reports = model_reports(s, [model]).get(model, {})  # this model's entries only
        policy_row = s.get(ModelPolicy, model)
        state = dict(policy_row.state or {}) if policy_row else {}
        alarms = [a.entry for a in s.scalars(select(AgentAudit).order_by(AgentAudit.id))
                  if a.entry.get("action") == "alarm" and a.entry.get("subject") == f"{model} {version}"]
    return {"model": model, "version": version, "sha256": mv.sha256, "created": mv.created,
            "manifest": m, "lineage": lineage,
            "dataset": {"sha256": dataset.sha256, "rows": dataset.rows, "first_ts": dataset.first_ts,
                        "last_ts": dataset.last_ts, "gateways": dataset.gateways} if dataset else None,
            "history": history, "field": _since_deployment(m, state, reports, model, version),
            "alarms": alarms[-50:], "kept": retention.covered(engine)}


def _since_deployment(manifest: dict[str, Any], state: dict[str, Any],
                      reports: dict[str, dict[str, Any]], model: str, version: str) -> dict[str, Any]:
    """This version's labelled outcomes on the gateways since its activation there, summed, and
    scored per class with intervals."""
    rows = field_reports.outcomes_of(state, field_reports.model_reports(reports, model), version)
    out = manifest.get("output") or {}
    classes = list(out.get("classes") or [])
    total = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for r in rows:
        conf = np.asarray(r.get("confusion") or [], dtype=np.int64)
        if r.get("classes") == classes and conf.shape == total.shape:
            total += conf
    costs = None
    if len(classes) > 1:
        try:
            costs = CostMatrix.from_manifest(classes, out.get("positive_class"), manifest.get("costs"))
        except CostError:  # a bundle with unusable costs still gets a card, with the defaults
            costs = CostMatrix(tuple(classes), out.get("positive_class"))
    scores = classifier_scores(total, costs) if costs is not None and total.sum() else None
    return {"gateways": [{k: r.get(k) for k in ("gateway", "since", "labelled", "live", "health")}
                         for r in rows], "scores": scores}


def _when(ts: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime(float(ts))) + " UTC" if ts else "-"


_KEPT_NAMES = {"telemetry": "telemetry", "samples": "labelled samples", "audit": "gateway audit entries"}


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
    holdout = (m.get("metrics") or {}).get("holdout") or {}
    lines += ["", "## Metrics on holdout", ""]
    lines += _score_lines(holdout, "holdout rows" + (" (in-sample: no holdout was given)"
                                                    if holdout.get("in_sample") else ""))
    costs = m.get("costs") or {}
    if costs:
        lines += ["", f"Cost matrix: a missed {costs.get('positive_class')} part costs "
                      f"{costs.get('cost_missed_nok')}, a false {costs.get('positive_class')} call "
                      f"{costs.get('cost_false_nok')} (per part)."]
    lines += ["", "## Since deployment", ""]
    since = d["field"]
    if since["gateways"]:
        lines += [f"- {g['gateway']}: {g['labelled']} labelled outcomes of this version since "
                  f"{_when(g['since'])}{' (now running)' if g['live'] else ' (no longer running it)'}"
                  for g in since["gateways"]]
    else:
        lines.append("- no labelled outcomes reported for this version")
    if since["scores"]:
        lines += ["", *_score_lines(since["scores"], "labelled outcomes, all gateways")]
    kept = d.get("kept") or {}
    if kept:  # what the figures above and below can cover: older data is gone by policy
        lines += ["", "Period covered: the hub keeps " + ", ".join(
            f"{_KEPT_NAMES.get(k, k)} {v['days']} days (since {_when(v['since'])})"
            for k, v in kept.items()) + " (edge-hub retention show)."]
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


def _fmt(v: Any) -> str:
    return "-" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))


def _score_lines(sc: dict[str, Any], what: str) -> list[str]:
    """A classifier's figures as a per-class table, or a regressor's MAE/RMSE."""
    if "per_class" not in sc:
        known = {k: v for k, v in sc.items() if k in ("mae", "rmse", "n", "accuracy", "precision",
                                                      "recall", "f1")}
        return [f"- {k}: {_fmt(v)}" for k, v in known.items()] or ["- none recorded"]
    lines = [f"{sc.get('n')} {what}: balanced accuracy {_fmt(sc.get('balanced_accuracy'))}, "
             f"expected cost {_fmt(sc.get('cost_per_part'))} per part, accuracy {_fmt(sc.get('accuracy'))}.",
             "", "| class | parts | recall (95% interval) | precision (95% interval) |",
             "| --- | --- | --- | --- |"]
    for name, c in sc["per_class"].items():
        def ci(key: str, c: dict[str, Any] = c) -> str:
            bounds = c.get(f"{key}_ci")
            return _fmt(c.get(key)) + (f" ({bounds[0]:.2f}-{bounds[1]:.2f})" if bounds else "")
        lines.append(f"| {name} | {c['support']} | {ci('recall')} | {ci('precision')} |")
    return lines


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
