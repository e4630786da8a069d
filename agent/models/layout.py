"""Where each model's state lives: STATE/models/<name>/ holds its versions and store state
(ModelStore), its label table and its monitor snapshot; audit.log, outbox.db, staging and the
operators' alarm requests stay shared at the top of STATE.

The single-model release (0.x) kept them at STATE/models/ (versions, state.json, request.json),
STATE/labels.db and STATE/monitor-state.npz. ``upgrade`` moves those into the folder of the
model the active bundle names, once, with renames: each file is moved into a hidden work
folder first, and the work folder is renamed into place last, so a crash half-way leaves a work
folder the next start finishes, never a model folder with half its state."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path

from agent.config.slots import SHORTHAND_NAME
from agent.errors import AgentError
from agent.models.bundle import unpack
from agent.models.store import REQUEST_FILE, SHA256_DIR, STATE_FILE
from agent.monitor.watch import LABELS_FILE, MONITOR_STATE_FILE

log = logging.getLogger(__name__)

MODELS_DIR = "models"
WORK_PREFIX = ".upgrade-"
# the single-model files, relative to STATE (SQLite's journal files travel with their database)
OLD_TOP_FILES = (LABELS_FILE, f"{LABELS_FILE}-wal", f"{LABELS_FILE}-shm", f"{LABELS_FILE}-journal",
                 MONITOR_STATE_FILE)
OLD_STORE_FILES = (STATE_FILE, REQUEST_FILE)


def model_dir(state_dir: Path, name: str) -> Path:
    return state_dir / MODELS_DIR / name


def old_layout(state_dir: Path) -> bool:
    """True when STATE holds the single-model files of release 0.x."""
    models = state_dir / MODELS_DIR
    if (models / STATE_FILE).is_file() or any((state_dir / f).exists() for f in OLD_TOP_FILES):
        return True
    try:
        return any(SHA256_DIR.fullmatch(d.name) and d.is_dir() for d in models.iterdir())
    except OSError:
        return False


def old_active_name(state_dir: Path) -> str | None:
    """The manifest name of the version the single-model store ran (or last noted)."""
    models = state_dir / MODELS_DIR
    try:
        state = json.loads((models / STATE_FILE).read_text())
    except (OSError, ValueError):
        state = {}
    sha = state.get("active") if isinstance(state, dict) else None
    if isinstance(sha, str) and SHA256_DIR.fullmatch(sha):
        try:
            name = json.loads((models / sha / "manifest.json").read_text()).get("name")
            if isinstance(name, str) and name:
                return name
        except (OSError, ValueError, AttributeError):
            pass
    history = state.get("history") if isinstance(state, dict) else None
    for entry in reversed(history if isinstance(history, list) else []):
        if isinstance(entry, dict) and isinstance(entry.get("name"), str) and entry["name"] != "?":
            return str(entry["name"])
    return None


def upgrade(state_dir: Path, name: str) -> bool:
    """Move the single-model files into STATE/models/<name>/; True when something moved."""
    models = state_dir / MODELS_DIR
    work = models / f"{WORK_PREFIX}{name}"
    if not old_layout(state_dir) and not work.is_dir():
        return False
    target = model_dir(state_dir, name)
    if target.exists() and not work.is_dir():
        log.error("state upgrade: %s exists already; the single-model files in %s are left where "
                  "they are (move them by hand if they belong to %s)", target, state_dir, name)
        return False
    work.mkdir(parents=True, exist_ok=True)
    moved = []
    for entry in list(models.iterdir()):
        if entry.name in OLD_STORE_FILES or (SHA256_DIR.fullmatch(entry.name) and entry.is_dir()):
            os.replace(entry, work / entry.name)
            moved.append(f"models/{entry.name}")
    for fname in OLD_TOP_FILES:
        if (state_dir / fname).exists():
            os.replace(state_dir / fname, work / fname)
            moved.append(fname)
    os.replace(work, target)  # last: the model's folder appears whole
    log.warning("state upgrade: the single-model state of %s moved into %s (%s)", name, target,
                ", ".join(sorted(moved)) or "a finished work folder")
    return True


def shorthand_dir_name(state_dir: Path, configured: Path | None) -> str:
    """The folder of a `model:` agent's one model: the old single-model state's model, else a
    folder an earlier start made, else the configured bundle's name, else 'default'."""
    models = state_dir / MODELS_DIR
    try:
        for work in models.glob(f"{WORK_PREFIX}*"):  # an upgrade a crash interrupted
            return work.name.removeprefix(WORK_PREFIX)
    except OSError:
        pass
    if old_layout(state_dir):
        return (old_active_name(state_dir) or manifest_name(configured, state_dir / "staging")
                or SHORTHAND_NAME)
    try:
        existing = sorted(d.name for d in models.iterdir()
                          if d.is_dir() and (d / STATE_FILE).is_file())
    except OSError:
        existing = []
    if len(existing) == 1:
        return existing[0]
    name = manifest_name(configured, state_dir / "staging")
    if name and (not existing or name in existing):
        return name
    return SHORTHAND_NAME if not existing or SHORTHAND_NAME in existing else existing[0]


def manifest_name(bundle: Path | None, staging: Path | None = None) -> str | None:
    """The name in a bundle's manifest (a folder, or a tar unpacked under the input limits into
    ``staging`` and removed again); None if it cannot be read (installing it says why)."""
    if bundle is None:
        return None
    work = None
    try:
        if bundle.is_dir():
            directory = bundle
        else:
            base = staging or Path(tempfile.gettempdir())
            base.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"install-{os.getpid()}-", dir=base))
            directory = unpack(bundle, work)
        doc = json.loads((directory / "manifest.json").read_text())
    except (OSError, ValueError, RecursionError, AgentError):
        return None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
    name = doc.get("name") if isinstance(doc, dict) else None
    return name if isinstance(name, str) and name else None
