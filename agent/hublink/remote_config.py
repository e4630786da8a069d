"""Config overlays from the hub, applied to the running agent.

The local YAML is the base. An overlay from the hub, minus the paths the plant pinned
(``config_pins``, and always gateway_id and state_dir), is merged over it and validated with
the same models as the local file. A valid result is applied to the running agent, restarting
only the components whose settings changed; if a changed source or output is not connected
within ``remote_config.grace_s`` the previous config comes back. The last good overlay is kept
in STATE/config-overlay.json, so a restart starts with it. Every step goes to the audit log."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig, parse_config
from agent.config.overlay import deep_merge, without_pinned
from agent.errors import ConfigError
from agent.service.reconfigure import restart_only_changes

if TYPE_CHECKING:
    from agent.service.agent import Agent

log = logging.getLogger(__name__)

OVERLAY_FILE = "config-overlay.json"


class RemoteConfig:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw
        self.base = parse_config(raw)  # the local file must be valid on its own
        self.path = self.base.state_dir / OVERLAY_FILE
        self.agent: Agent | None = None
        self.version: str | None = None  # the overlay in force (None: the local file alone)
        self.state = "local"
        self.detail: str | None = None
        self.ignored: list[str] = []
        # overlay version -> why it was refused or reverted; kept across restarts, so that a
        # restart does not try a change that already failed here again
        self.failed: dict[str, str] = {}
        self.good: tuple[str | None, dict[str, Any] | None] = (None, None)
        self._grace: asyncio.Task[None] | None = None

    def attach(self, agent: Agent) -> None:
        self.agent = agent

    # -- building configs ---------------------------------------------------------------------
    def merged(self, overlay: dict[str, Any]) -> tuple[AgentConfig, list[str]]:
        """Base + overlay without the pinned paths; ConfigError names each problem."""
        if not isinstance(overlay, dict):
            raise ConfigError(["(overlay): expected a mapping of config sections"])
        allowed, dropped = without_pinned(overlay, list(self.base.config_pins))
        return parse_config(deep_merge(self.raw, allowed)), dropped

    def startup_config(self) -> AgentConfig:
        """The base with the last good overlay, if it still validates against today's file."""
        try:
            doc = json.loads(self.path.read_text())
        except (FileNotFoundError, NotADirectoryError):
            return self.base  # no overlay yet (or no state directory: run() says so)
        except (OSError, ValueError) as exc:
            log.error("%s unreadable (%s): starting from the local file alone", self.path, exc)
            return self.base
        self.failed = dict(doc.get("failed") or {})
        if not self.base.remote_config.enabled or not doc.get("version"):
            return self.base
        try:
            config, self.ignored = self.merged(doc.get("overlay") or {})
        except ConfigError as exc:
            log.error("the last overlay from the hub no longer fits the local file (%s); "
                      "starting from the local file alone", "; ".join(exc.problems))
            return self.base
        self.version, self.state = doc.get("version"), "applied"
        self.good = (self.version, doc.get("overlay"))
        log.info("config overlay %s from the hub applied over the local file", self.version)
        return config

    def _persist(self) -> None:
        version, overlay = self.good
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": version, "overlay": overlay, "saved": time.time(),
                                   "failed": dict(list(self.failed.items())[-50:])}))
        os.replace(tmp, self.path)

    # -- the hub's desired state ----------------------------------------------------------------
    async def on_desired(self, doc: dict[str, Any] | None) -> bool:
        """Act on the config part of the desired state; True when something changed."""
        if self.agent is None or not self.base.remote_config.enabled:
            return False
        version = doc.get("version") if doc else None
        if version == self.version or (version is not None and version in self.failed):
            return False
        if self._grace is not None and not self._grace.done():
            return False  # one change at a time: the one in its grace period decides first
        overlay = (doc or {}).get("overlay") or {}
        try:
            new, dropped = self.merged(overlay) if version else (self.base, [])
        except ConfigError as exc:
            return self._refuse(version, "invalid: " + "; ".join(exc.problems))
        blocked = restart_only_changes(self.agent.config, new)
        if blocked:
            return self._refuse(version, f"changes {', '.join(blocked)}, which need a restart; "
                                "set them in the local file")
        old, old_version = self.agent.config, self.version
        try:
            changed = await self.agent.reconfigure(new)
        except Exception as exc:  # a component that cannot be built: put the old ones back
            log.exception("config overlay %s failed to apply", version)
            await self.agent.reconfigure(old)
            return self._refuse(version, f"failed to apply: {exc}")
        self.version, self.ignored = version, dropped
        self.state, self.detail = "pending", f"changed: {', '.join(changed) or 'nothing running'}"
        what = "overlay cleared: back to the local file" if version is None else f"overlay {version}"
        self.agent.record_audit("hub", "config_applied", what, self.detail,
                                {"version": version, "overlay": overlay, "ignored_pinned": dropped})
        log.info("config %s applied (%s)%s", version or "(local file)", self.detail,
                 f"; pinned locally, ignored: {', '.join(dropped)}" if dropped else "")
        self._grace = asyncio.create_task(self._confirm(version, overlay, old, old_version, changed))
        return True

    def _refuse(self, version: str | None, why: str) -> bool:
        log.error("config overlay %s from the hub refused: %s", version, why)
        if version is not None:
            self.failed[version] = why
            self._persist()
        self.state, self.detail = "rejected", why
        if self.agent is not None:
            self.agent.record_audit("agent", "config_rejected", f"overlay {version}", why)
        return True

    async def _confirm(self, version: str | None, overlay: dict[str, Any], old: AgentConfig,
                       old_version: str | None, changed: list[str]) -> None:
        """After the grace period: keep the change if what it touched is connected, else revert."""
        assert self.agent is not None
        await asyncio.sleep(self.base.remote_config.grace_s)
        down = [name for name in changed if not self.agent.component_connected(name)]
        if not down:
            self.good = (version, overlay if version else None)
            self._persist()
            self.state = "applied" if version else "local"
            self.agent.record_audit("agent", "config_confirmed", f"overlay {version}",
                                    f"connected within {self.base.remote_config.grace_s:g} s")
            return
        why = f"{', '.join(down)} not connected within {self.base.remote_config.grace_s:g} s"
        log.error("config overlay %s reverted: %s", version, why)
        await self.agent.reconfigure(old)
        self.version = old_version
        if version is not None:
            self.failed[version] = f"reverted: {why}"
            self._persist()
        self.state, self.detail = "reverted", why
        self.agent.record_audit("agent", "config_reverted", f"overlay {version}", why,
                                {"back_to": old_version})

    def report(self) -> dict[str, Any]:
        return {"state": self.state, "version": self.version, "detail": self.detail,
                "ignored_pinned": self.ignored,
                "failed": [{"version": v, "why": w} for v, w in list(self.failed.items())[-5:]]}
