"""What keeps an idle poll and a known token off the database, and how a change reaches them.

``DesiredCache`` holds the fleet snapshot and the desired state (with its ETag) per gateway made
from it. A change names what it touched (``changed({"line-7"})``, ``changed({"group:press"})``):
only those targets' rollouts, groups and overlays are reloaded and only the desired states of
their gateways are dropped. ``changed()`` with nothing named reloads everything (rollout
decisions, the periodic refresh that picks up changes made by other processes).

Both caches are what a LISTEN/NOTIFY listener will call with the targets and token hashes a
change names, when several hub workers share one PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import desc, select, tuple_
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from hub.rollouts import SKIPPED, FleetSnapshot, _Rollout, load_snapshot
from hub.storage import ConfigOverlay, Deployment, Gateway, Holder, ModelVersion


class DesiredCache:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()  # one reload at a time; readers never wait
        self.snapshot = load_snapshot(engine)
        self.desired: dict[str, tuple[dict[str, Any], str]] = {}
        self.reloads = self.partial_reloads = 0  # for tests and metrics

    def get(self, gateway_id: str) -> tuple[dict[str, Any], str]:
        """(desired state, ETag); computed from the snapshot once per change."""
        hit = self.desired.get(gateway_id)
        if hit is None:
            doc = self.snapshot.desired(gateway_id)
            etag = '"' + hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:32] + '"'
            hit = self.desired[gateway_id] = (doc, etag)
        return hit

    def knows(self, gateway_id: str) -> bool:
        return gateway_id in self.snapshot.groups

    def changed(self, targets: Iterable[str] | None = None) -> None:
        """Reload what ``targets`` (gateway ids, group:NAME) touch; None: everything."""
        with self._lock:
            if targets is None:
                snapshot = load_snapshot(self.engine)
                self.snapshot, self.desired = snapshot, {}  # two assignments: readers see old or new
                self.reloads += 1
                return
            names = set(targets)
            if not names:
                return
            snapshot, affected = self._reload_part(names)
            self.snapshot = snapshot
            for gateway_id in affected:
                self.desired.pop(gateway_id, None)
            self.partial_reloads += 1

    def _reload_part(self, targets: set[str]) -> tuple[FleetSnapshot, set[str]]:
        old = self.snapshot
        gateways = {t for t in targets if not t.startswith("group:")}
        groups = {t.removeprefix("group:") for t in targets if t.startswith("group:")}
        with Session(self.engine) as s:
            membership = dict(old.groups)
            reported = dict(old.reported)
            found: dict[str, tuple[str | None, str | None]] = {
                g: (grp, named) for g, grp, named in s.execute(
                    select(Gateway.id, Gateway.group, Gateway.active_model).where(Gateway.id.in_(gateways)))}
            for gateway_id in gateways:
                reported.pop(gateway_id, None)
                if gateway_id in found:
                    membership[gateway_id], named = found[gateway_id]
                    if named:
                        reported[gateway_id] = named
                else:
                    membership.pop(gateway_id, None)
            # a gateway seen for the first time or moved: its group's rollouts are read as well
            reread = targets | {f"group:{membership[g]}" for g in gateways if membership.get(g)}
            by_target = dict(old.by_target)
            for t in reread:
                by_target[t] = [
                    _Rollout(d.id, d.model, d.version, d.strategy, d.status, tuple(d.canary or ()),
                             d.created, d.min_labels, d.watch_s)
                    for d in s.scalars(select(Deployment).where(
                        Deployment.target == t, Deployment.status.not_in(SKIPPED))
                        .order_by(desc(Deployment.id)))]
                if not by_target[t]:
                    del by_target[t]
            versions = dict(old.versions)
            wanted = {(r.model, r.version) for t in reread for r in by_target.get(t, [])} - set(versions)
            if wanted:
                columns = (ModelVersion.name, ModelVersion.version, ModelVersion.sha256,
                           ModelVersion.archive_sha256, ModelVersion.size)
                for name, version, sha, archive, size in s.execute(select(*columns).where(
                        tuple_(ModelVersion.name, ModelVersion.version).in_(list(wanted)))):
                    versions[(name, version)] = {"name": name, "version": version, "sha256": sha,
                                                 "archive_sha256": archive, "size": size,
                                                 "url": f"/api/v1/bundles/{sha}"}
            overlays = dict(old.overlays)
            for t in reread:
                row = s.scalars(select(ConfigOverlay).where(ConfigOverlay.target == t)
                                .order_by(desc(ConfigOverlay.id)).limit(1)).first()
                if row is None:
                    overlays.pop(t, None)
                else:
                    overlays[t] = {"overlay": row.overlay, "id": row.id, "author": row.author,
                                   "comment": row.comment, "created": row.created}
        affected = set(gateways) | {g for g, grp in membership.items() if grp in groups} | {
            g for g, grp in old.groups.items() if grp in groups}
        for gateway_id in gateways:  # a gateway that moved: its old and new group's rollouts apply
            affected.add(gateway_id)
        return FleetSnapshot(membership, by_target, versions, overlays, reported), affected


class TokenCache:
    """Known tokens for ``ttl_s``, unknown ones for 1 s (a new gateway's token works at once),
    at most ``max_size`` entries: a flood of unknown tokens cannot fill memory."""

    UNKNOWN_TTL_S = 1.0

    def __init__(self, lookup: Callable[[str], Holder | None], ttl_s: float, max_size: int) -> None:
        self._lookup, self.ttl_s, self.max_size = lookup, ttl_s, max_size
        self._entries: dict[str, tuple[float, Holder | None]] = {}

    def get(self, token_hash: str) -> tuple[bool, Holder | None]:
        """(cached?, holder); call ``put`` after a lookup on a miss."""
        hit = self._entries.get(token_hash)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def lookup(self, token_hash: str) -> Holder | None:
        holder = self._lookup(token_hash)
        if len(self._entries) >= self.max_size:
            self._entries.clear()
        ttl = self.ttl_s if holder else self.UNKNOWN_TTL_S
        self._entries[token_hash] = (time.monotonic() + ttl, holder)
        return holder

    def forget(self, token_hash: str | None = None) -> None:
        """One token (revoked here), or every one (revoked elsewhere)."""
        if token_hash is None:
            self._entries.clear()
        else:
            self._entries.pop(token_hash, None)

    def __len__(self) -> int:
        return len(self._entries)
