"""Detector state on disk: snapshotted periodically and at shutdown, restored at start, so a
restart is not a blind spot. One .npz per bundle; a state of another model version is ignored."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from agent.monitor.incidents import IncidentBook
from agent.monitor.monitor import ModelMonitor

log = logging.getLogger(__name__)


def _flatten(monitor: ModelMonitor) -> dict[str, np.ndarray]:
    flat: dict[str, np.ndarray] = {}
    for name, part in monitor.parts().items():
        for key, value in part.state().items():
            flat[f"{name}/{key}"] = np.asarray(value)
    flat["meta/samples"] = np.asarray(monitor.samples)
    flat["meta/labels"] = np.asarray(monitor.labels)
    flat["meta/ts"] = monitor._ts
    flat["meta/ts_seen"] = np.asarray(monitor._ts_seen)
    flat["meta/cbpe"] = np.asarray(monitor.cbpe_expected)
    flat["meta/book"] = np.asarray(json.dumps(monitor.book.state()))
    if monitor._prev is not None:  # the scale CUSUM's last row, for its next prediction error
        flat["meta/prev"] = monitor._prev
    return flat


def state_bytes(monitor: ModelMonitor, bundle_sha256: str,
                incidents: IncidentBook | None = None) -> bytes:
    buf = io.BytesIO()
    arrays = {**_flatten(monitor), "meta/bundle": np.asarray(bundle_sha256)}
    if incidents is not None:
        arrays["meta/incidents"] = np.asarray(json.dumps(incidents.state(), default=float))
    np.savez_compressed(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


def save_state(path: Path, monitor: ModelMonitor, bundle_sha256: str,
               incidents: IncidentBook | None = None) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(state_bytes(monitor, bundle_sha256, incidents))
    os.replace(tmp, path)  # a crash mid-write leaves the previous snapshot intact


def restore_state(path: Path, monitor: ModelMonitor, bundle_sha256: str,
                  incidents: IncidentBook | None = None) -> bool:
    """Load a snapshot into ``monitor``; False (and a fresh start) when absent, unreadable or
    made for another bundle."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["meta/bundle"]) != bundle_sha256:
                log.info("monitor state %s belongs to another model version; starting fresh", path)
                return False
            parts: dict[str, dict[str, Any]] = {}
            for key in data.files:
                name, field = key.split("/", 1)
                parts.setdefault(name, {})[field] = data[key]
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError) as exc:
        log.warning("monitor state %s unreadable (%s); starting fresh", path, exc)
        return False
    try:
        for name, part in monitor.parts().items():
            if name in parts:
                part.restore(parts[name])
    except (ValueError, KeyError) as exc:  # a snapshot of another layout of the same bundle
        log.warning("monitor state %s does not fit this monitor (%s); starting fresh", path, exc)
        fresh = type(monitor)(monitor.manifest)
        monitor.__dict__.update(fresh.__dict__)
        return False
    meta = parts["meta"]
    monitor.samples = int(meta["samples"])
    monitor.labels = int(meta["labels"])
    monitor._ts[:] = meta["ts"]
    monitor._ts_seen = int(meta["ts_seen"])
    monitor.cbpe_expected = float(meta["cbpe"])
    monitor.book.restore(json.loads(str(meta["book"])))
    monitor._prev = np.asarray(meta["prev"], dtype=np.float64).copy() if "prev" in meta else None
    if incidents is not None and "incidents" in meta:
        try:
            incidents.restore(json.loads(str(meta["incidents"])))
        except (TypeError, ValueError, KeyError) as exc:  # a snapshot of an older layout
            log.warning("incidents in %s unreadable (%s); starting without them", path, exc)
    return True
