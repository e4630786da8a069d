"""edge-agent replay: the same features -> model -> monitors path as `run`, offline, over a CSV.

Input: a `timestamp` column (ISO 8601 or epoch seconds), one column per tag the model reads,
and an optional `label` column (blank = no label for that row). Output: REPORT.json with the
samples, the model, every warning and alarm with the CSV row at which it fired, and metrics.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.config import AgentConfig
from agent.errors import ConfigError, CsvError
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.ingest.csvio import Table, read_table
from agent.ingest.quality import parse_decimal
from agent.monitor.alarms import MonitorEvent
from agent.monitor.monitor import ModelMonitor

BATCH = 256


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


def replay(cfg: AgentConfig, csv_path: Path) -> dict[str, Any]:
    if cfg.model.bundle is None:
        raise ConfigError(["model.bundle: replay needs a model bundle in the config"])
    started = time.perf_counter()
    model = load_model(cfg.model, cfg.model.bundle, cfg.state_dir / "staging")
    monitor = ModelMonitor(model.bundle.manifest)
    table = read_table(csv_path)
    tags = model.input_tags
    table.require(["timestamp", *tags])
    ts = parse_timestamps(table)
    x = np.column_stack([table.numeric(t) for t in tags]).astype(np.float32)
    has_labels = "label" in table.data
    mask, truth = label_values(table, model.classes) if has_labels else (np.zeros(len(ts), bool), None)
    events: list[MonitorEvent] = []
    correct = labelled = 0
    for start in range(0, len(ts), BATCH):
        stop = min(len(ts), start + BATCH)
        batch = SampleBatch([str(i) for i in range(start, stop)], ts[start:stop], x[start:stop])
        preds, out = model.predict(batch)
        conf = out.scores.max(axis=1) if model.classes and out.scores.shape[1] > 1 else None
        events += monitor.update(batch, preds, conf)
        rows = np.flatnonzero(mask[start:stop])
        if truth is not None and len(rows):
            predicted = preds.label_idx if preds.label_idx is not None else preds.score
            events += monitor.on_labels(rows + start, np.asarray(predicted)[rows], truth[start + rows])
            if model.classes:
                correct += int((np.asarray(predicted)[rows] == truth[start + rows]).sum())
            labelled += len(rows)
    metrics = monitor.metrics()
    metrics["labelled_rows"] = labelled
    metrics["label_coverage"] = round(labelled / len(ts), 4) if len(ts) else None
    if model.classes and labelled:
        metrics["accuracy"] = round(correct / labelled, 4)
    metrics["samples_per_s"] = round(len(ts) / max(1e-9, time.perf_counter() - started))
    return {
        "samples": len(ts),
        "model": {"name": model.name, "version": model.version, "sha256": model.bundle.sha256},
        "events": [e.report_row() for e in events if e.level in ("warning", "alarm")],
        "metrics": {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in metrics.items()},
    }


def run_replay(cfg: AgentConfig, csv_path: Path, out: Path) -> int:
    report = replay(cfg, csv_path)
    out.write_text(json.dumps(report, indent=1))
    alarms = sum(1 for e in report["events"] if e["level"] == "alarm")
    print(f"{report['samples']} samples, {len(report['events'])} events ({alarms} alarms) -> {out}")
    return 0
