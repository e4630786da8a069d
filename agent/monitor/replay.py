"""edge-agent replay: the same features -> model -> monitors -> incidents path as `run`,
offline, over a CSV.

The config needs only ``model`` and ``monitoring`` (a whole agent config works too; its sources
are not used): the CSV's columns are the tags. Input: a `timestamp` column (ISO 8601 or epoch
seconds), one column per tag the model reads, and an optional `label` column (blank = no label
for that row). Output: REPORT.json with the samples, the model, every detector warning and
alarm with the CSV row at which it fired, the incidents and notifications they made, and
metrics; and a one-screen summary.
"""

from __future__ import annotations

import json
import math
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError

from agent.config import MonitoringConfig
from agent.config.common import Strict
from agent.config.loader import format_location, load_config_dict, parse_config
from agent.config.model import ModelConfig
from agent.errors import ConfigError, CsvError
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.ingest.csvio import Table, read_table
from agent.ingest.quality import parse_decimal
from agent.monitor.alarms import MonitorEvent
from agent.monitor.incidents import FloodGuard, IncidentBook, IncidentEvent
from agent.monitor.monitor import ModelMonitor

BATCH = 256

__all__ = ["ReplayConfig", "load_replay_config", "parse_timestamps", "replay", "run_replay"]


class ReplayConfig(Strict):
    """What replay reads of a config: the model and how it is monitored."""

    model: ModelConfig = Field(description="The bundle to replay and how to verify it.")
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig,
                                         description="Model health monitoring.")
    gateway_id: str | None = Field(None, description="Ignored by replay; allowed for convenience.")
    state_dir: Path | None = Field(None, description="Where a bundle archive is unpacked "
                                   "(default: a temporary directory).")


def load_replay_config(path: Path, model: str | None = None) -> ReplayConfig:
    """A whole agent config (validated as `run` would) or one with only model and monitoring.
    ``model``: which of the config's models (needed when it runs several)."""
    raw = load_config_dict(path)
    if isinstance(raw, dict) and "sources" in raw:
        cfg = parse_config(raw)
        names = [e.name or "(the model: shorthand)" for e in cfg.models]
        if model is None and len(cfg.models) > 1:
            raise ConfigError([f"--model: {path} runs {len(names)} models ({', '.join(names)}); "
                               "say which to replay"])
        entry = next((e for e in cfg.models if model is None or e.name == model or e.shorthand),
                     None)
        if entry is None:
            raise ConfigError([f"--model: no model named {model!r} in {path}; its models are "
                               f"{', '.join(names)}"])
        return ReplayConfig(model=entry, monitoring=cfg.monitoring_of(entry),
                            gateway_id=cfg.gateway_id, state_dir=cfg.state_dir)
    if not isinstance(raw, dict):
        raise ConfigError([f"{path}: expected a mapping with model (and monitoring)"])
    try:
        return ReplayConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            place = format_location(tuple(err["loc"]))
            if err["type"] == "extra_forbidden":
                problems.append(f"{place}: not read by replay; a replay config needs only model and "
                                "monitoring (or a whole agent config with sources)")
            elif err["type"] == "missing":
                problems.append(f"{place}: required setting is missing")
            else:
                problems.append(f"{place}: {str(err['msg']).removeprefix('Value error, ')}")
        raise ConfigError(list(dict.fromkeys(problems))) from None


def parse_timestamps(table: Table) -> np.ndarray:
    return table.timestamps("timestamp")


def label_values(table: Table, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(mask of labelled rows, truth as class index or value)."""
    cells = [c.strip() for c in table.data["label"]]
    mask = np.array([bool(c) for c in cells])
    truth = np.zeros(len(cells))
    pos = {c: i for i, c in enumerate(classes)}
    for i, c in enumerate(cells):
        if not c:
            continue
        if classes:
            key = c if c in pos else (str(int(float(c))) if _is_int(c) else c)
            if key not in pos:
                raise CsvError(f"{table.path}: row {table.row_numbers[i]}, column 'label': "
                               f"'{c[:40]}' is not one of the model's classes {classes}")
            truth[i] = pos[key]
        else:
            try:
                truth[i] = parse_decimal(c)
            except ValueError:
                truth[i] = math.nan
            if not math.isfinite(truth[i]):
                raise CsvError(f"{table.path}: row {table.row_numbers[i]}, column 'label': "
                               f"'{c[:40]}' is not a finite plain decimal number") from None
    return mask, truth


def _is_int(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def replay(cfg: ReplayConfig, csv_path: Path) -> dict[str, Any]:
    if cfg.model.bundle is None:
        raise ConfigError(["model.bundle: replay needs a model bundle in the config"])
    with tempfile.TemporaryDirectory(prefix="replay-") as tmp:  # lives while the model is used
        staging = (cfg.state_dir / "staging") if cfg.state_dir is not None else Path(tmp)
        return _replay(cfg, cfg.model.bundle, staging, csv_path)


def _replay(cfg: ReplayConfig, bundle: Path, staging: Path, csv_path: Path) -> dict[str, Any]:
    started = time.perf_counter()
    model = load_model(cfg.model, bundle, staging)
    monitor = ModelMonitor(model.bundle.manifest)
    book = IncidentBook(model.name, model.version, model.bundle.sha256,
                        FloodGuard(cfg.monitoring.max_notifications_per_10min))
    table = read_table(csv_path)
    tags = model.input_tags
    table.require(["timestamp", *tags])
    ts = parse_timestamps(table)
    x = np.column_stack([table.numeric(t) for t in tags]).astype(np.float32)
    has_labels = "label" in table.data
    mask, truth = label_values(table, model.classes) if has_labels else (np.zeros(len(ts), bool), None)
    events: list[MonitorEvent] = []
    incident_events: list[IncidentEvent] = []
    correct = labelled = 0
    for start in range(0, len(ts), BATCH):
        stop = min(len(ts), start + BATCH)
        batch = SampleBatch([str(i) for i in range(start, stop)], ts[start:stop], x[start:stop])
        preds, out = model.predict(batch)
        conf = out.scores.max(axis=1) if model.classes and out.scores.shape[1] > 1 else None
        found = monitor.update(batch, preds, conf)
        rows = np.flatnonzero(mask[start:stop])
        if truth is not None and len(rows):
            predicted = preds.label_idx if preds.label_idx is not None else preds.score
            found += monitor.on_labels(rows + start, np.asarray(predicted)[rows], truth[start + rows],
                                       np.asarray(preds.score, dtype=np.float64)[rows])
            if model.classes:
                correct += int((np.asarray(predicted)[rows] == truth[start + rows]).sum())
            labelled += len(rows)
            # the labels' events among the samples', in sample order: as a batch of one sample
            # would give them, so the incidents do not depend on BATCH
            found.sort(key=lambda e: e.index)
        events += found
        incident_events += book.apply(found)
    metrics = monitor.metrics()
    metrics["labelled_rows"] = labelled
    metrics["label_coverage"] = round(labelled / len(ts), 4) if len(ts) else None
    if model.classes and labelled:
        metrics["accuracy"] = round(correct / labelled, 4)
    metrics["samples_per_s"] = round(len(ts) / max(1e-9, time.perf_counter() - started))
    incidents = [*(i.summary() for i in book.closed), *(i.summary() for i in book.open_incidents())]
    for inc in incidents:
        inc.pop("journal", None)
    return {
        "samples": len(ts),
        "model": {"name": model.name, "version": model.version, "sha256": model.bundle.sha256},
        "budget": monitor.budget, "budget_per_model": monitor.budget_per_model,
        "events": [e.report_row() for e in events if e.level in ("warning", "alarm")],
        "incidents": incidents,
        "notifications": [_notification_row(e) for e in incident_events
                          if e.notify or e.suppressed is not None],
        "counts": dict(book.counts),
        "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
    }


def _notification_row(e: IncidentEvent) -> dict[str, Any]:
    return {"index": e.index, "incident": e.incident_id, "action": e.action, "level": e.level,
            "sent": e.notify, "suppressed": e.suppressed, "reason": e.reason,
            "detector": f"{e.kind}/{e.detector}" if e.kind else None, "feature": e.feature,
            "features": e.features, "start_index": e.start_index,
            "incident_start_index": e.incident_start_index}


def summary_lines(report: dict[str, Any], out: Path) -> list[str]:
    """One screen: what was replayed, what was raised, and where the change was estimated."""
    m, counts = report["model"], report["counts"]
    alarms = sum(1 for n in report["notifications"] if n["level"] == "alarm" and n["sent"])
    lines = [f"{report['samples']} samples of {m['name']} {m['version']} -> {out}",
             f"{counts['incidents']} incident(s), {counts['notifications']} notification(s) sent "
             f"({alarms} at alarm level), {counts['suppressed_flood']} held back by the flood guard; "
             f"{len(report['events'])} detector warnings/alarms underneath"]
    if not report["budget_per_model"]:
        lines.append("budget: per stream (bundle built before per-model budgets; rebuild it)")
    shown = report["incidents"][:12]
    if shown:
        lines.append(f"{'incident':9} {'raised':>7} {'level':7} {'change from':>11}  detectors / features")
    for inc in shown:
        start = inc.get("start_index")
        lines.append(f"{inc['id']:9} {inc['opened_index']:7d} {inc['level']:7} "
                     f"{'?' if start is None else start:>11}  {', '.join(inc['detectors'])}"
                     + (f" / {', '.join(inc['features'][:6])}" if inc["features"] else ""))
    if len(report["incidents"]) > len(shown):
        lines.append(f"... and {len(report['incidents']) - len(shown)} more in the report")
    met = report["metrics"]
    if met.get("accuracy") is not None:
        lines.append(f"labelled rows {met['labelled_rows']}, accuracy {met['accuracy']}")
    return lines


def run_replay(cfg: ReplayConfig, csv_path: Path, out: Path) -> int:
    report = replay(cfg, csv_path)
    out.write_text(json.dumps(report, indent=1))
    print("\n".join(summary_lines(report, out)))
    return 0
