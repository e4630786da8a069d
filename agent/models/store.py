"""Model versions on the gateway's disk: verified bundles under STATE/models/<sha256>/, and a
small state file saying which one is active, which came before, which are refused and why.

Every bundle enters through ``install``: unpack to staging, verify hashes and signature, then
one rename into place, so a half-copied or unverified bundle is never where the agent loads
from. The state file is replaced atomically (write, fsync, rename)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from agent.config.limits import DEFAULT_LIMITS, InputLimits
from agent.errors import BundleError
from agent.models.bundle import Bundle, TrustedKey, unpack, verify_bundle

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
REQUEST_FILE = "request.json"
HISTORY_LIMIT = 200


SHA256_DIR = re.compile(r"[0-9a-f]{64}")  # an installed version's folder
_PARTIAL_DOWNLOAD = re.compile(r"[0-9a-f]{64}\.part")


def clean_staging(staging: Path) -> list[str]:
    """Remove what earlier runs left in staging (a kill during an install leaves install-*).
    Work folders are named after the process that made them (install-PID-..., bundle-PID-...):
    those of a process still running (a concurrent 'models import') are kept, for a day, and so
    is a partial hub download (SHA256.part), which the next poll resumes."""
    removed: list[str] = []
    try:
        entries = list(staging.iterdir())
    except OSError:
        return removed
    for entry in entries:
        if _in_use(entry):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry.name)
    if removed:
        log.info("staging: removed %d leftover(s) of earlier runs: %s", len(removed),
                 ", ".join(sorted(removed)[:10]))
    return removed


def _in_use(entry: Path) -> bool:
    if _PARTIAL_DOWNLOAD.fullmatch(entry.name):  # resumed by the next poll (HTTP Range)
        try:
            return time.time() - entry.lstat().st_mtime <= 86400
        except OSError:
            return False
    parts = entry.name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    pid = int(parts[1])
    try:
        if time.time() - entry.lstat().st_mtime > 86400:
            return False
        if pid == os.getpid():
            return True
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, another user's
    except OSError:
        return False
    return True


@dataclass
class StoreState:
    active: str | None = None
    previous: str | None = None
    shadow: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    rejected: dict[str, dict[str, Any]] = field(default_factory=dict)


class ModelStore:
    def __init__(self, state_dir: Path, keep: int = 3, limits: InputLimits = DEFAULT_LIMITS,
                 name: str | None = None) -> None:
        """The versions of one model: STATE/models/<name>/ (``name`` None: STATE/models/, the
        single-model layout of release 0.x, still read by the upgrade). Staging is shared."""
        self.root = state_dir / "models" / name if name else state_dir / "models"
        self.staging = state_dir / "staging"
        self.keep = keep
        self.limits = limits
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        clean_staging(self.staging)
        self.state = self._read_state()

    # -- bundles ------------------------------------------------------------------------------
    def install(self, source: Path, trusted_keys: list[TrustedKey], allow_unsigned: bool,
                expect_sha256: str | None = None, check_model: bool = False) -> Bundle:
        """Verify a bundle (directory or tar) and keep it under its manifest sha256. With
        ``check_model`` the model is also loaded and self-tested first (``models import``)."""
        work = Path(tempfile.mkdtemp(prefix=f"install-{os.getpid()}-", dir=self.staging))
        try:
            directory = unpack(source, work, self.limits)
            if check_model:
                from agent.models.acceptance import check_bundle

                bundle = check_bundle(directory, trusted_keys, allow_unsigned, self.limits)
            else:
                bundle = verify_bundle(directory, trusted_keys, allow_unsigned, self.limits)
            if expect_sha256 is not None and bundle.sha256 != expect_sha256:
                raise BundleError(f"{source}: manifest sha256 {bundle.sha256[:12]} is not the "
                                  f"{expect_sha256[:12]} the hub deployed (tampered manifest?)")
            target = self.root / bundle.sha256
            if not target.exists():
                copy = work / "verified"
                shutil.copytree(directory, copy)
                os.replace(copy, target)  # one rename: the folder is complete or absent
            return replace(bundle, path=target)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def path(self, sha256: str) -> Path:
        return self.root / sha256

    def has(self, sha256: str) -> bool:
        return (self.root / sha256 / "manifest.json").is_file()

    def versions(self) -> list[dict[str, Any]]:
        """Installed versions, newest first, with what the state says about each."""
        out = []
        for d in self.root.iterdir():
            manifest = d / "manifest.json"
            if not d.is_dir() or not manifest.is_file():
                continue
            try:
                m = json.loads(manifest.read_text())
            except (OSError, ValueError):
                continue
            sha = d.name
            role = ("active" if sha == self.state.active else "previous" if sha == self.state.previous
                    else "shadow" if sha == self.state.shadow else "")
            out.append({"sha256": sha, "name": m.get("name"), "version": m.get("version"),
                        "created": m.get("created"), "installed": d.stat().st_mtime, "role": role,
                        "rejected": self.state.rejected.get(sha, {}).get("reason")})
        return sorted(out, key=lambda v: v["installed"], reverse=True)

    def find(self, version: str) -> str | None:
        """sha256 of an installed version given by version string or sha256 prefix."""
        for v in self.versions():
            if v["version"] == version or (len(version) >= 8 and v["sha256"].startswith(version)):
                return str(v["sha256"])
        return None

    def prune(self) -> list[str]:
        """Keep the active, previous and shadow versions and the last N activated; drop the rest."""
        keep = {s for s in (self.state.active, self.state.previous, self.state.shadow) if s}
        for entry in reversed(self.state.history):
            if len(keep) >= max(self.keep, 1):
                break
            keep.add(entry["sha256"])
        removed = []
        fresh = time.time() - 600  # just imported by the operator, request not yet taken
        for d in self.root.iterdir():
            if (d.is_dir() and SHA256_DIR.fullmatch(d.name) and d.name not in keep
                    and d.stat().st_mtime < fresh):
                shutil.rmtree(d, ignore_errors=True)
                removed.append(d.name)
        return removed

    # -- state --------------------------------------------------------------------------------
    def _read_state(self) -> StoreState:
        path = self.root / STATE_FILE
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            return StoreState()
        except (OSError, ValueError) as exc:
            # a state file we cannot read must not stop the line: start from the configured model
            log.error("%s is unreadable (%s); starting without model history", path, exc)
            return StoreState()
        return StoreState(doc.get("active"), doc.get("previous"), doc.get("shadow"),
                          list(doc.get("history") or []), dict(doc.get("rejected") or {}))

    def save(self) -> None:
        s = self.state
        doc = {"active": s.active, "previous": s.previous, "shadow": s.shadow,
               "history": s.history[-HISTORY_LIMIT:], "rejected": s.rejected}
        path = self.root / STATE_FILE
        tmp = path.with_suffix(".tmp")
        with tmp.open("w") as fh:
            json.dump(doc, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def note(self, sha256: str, name: str, version: str, event: str, reason: str) -> dict[str, Any]:
        entry = {"sha256": sha256, "name": name, "version": version, "event": event,
                 "reason": reason, "at": time.time()}
        self.state.history.append(entry)
        return entry

    def reject(self, sha256: str, name: str, version: str, reason: str) -> None:
        """Never activate this version again on our own (the operator may, explicitly)."""
        self.state.rejected[sha256] = {"sha256": sha256, "name": name, "version": version,
                                       "reason": reason, "at": time.time()}
        self.note(sha256, name, version, "rejected", reason)
        self.save()

    # -- operator requests (edge-agent models import | rollback) -------------------------------
    def request(self, sha256: str, by: str, reason: str, action: str = "activate") -> None:
        path = self.root / REQUEST_FILE
        tmp = path.with_suffix(".req.tmp")
        tmp.write_text(json.dumps({"sha256": sha256, "by": by, "reason": reason, "action": action,
                                   "at": time.time()}))
        os.replace(tmp, path)

    def take_request(self) -> dict[str, Any] | None:
        path = self.root / REQUEST_FILE
        try:
            doc: dict[str, Any] = json.loads(path.read_text())
            path.unlink()
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("ignoring an unreadable operator request %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return None
        return doc
