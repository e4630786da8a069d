"""Model versions from the hub: poll the desired state (ETag, jittered interval), download a
bundle to staging with HTTP Range (a broken download resumes), check the archive's size and
sha256, verify and install it, then hand it to the lifecycle to activate or run as a shadow.
A status report (active and shadow versions, comparison figures, rejections, alarms, backlog)
goes to the hub after every change and every report interval.

What the hub says is checked before it is acted on: a desired state of the wrong shape is a
refusal (the sync goes on polling), a bundle URL must be on the hub's own origin (the gateway's
token goes nowhere else), a download has a deadline (`download_timeout_s`; it resumes), and a
Range answer must start where the partial download ends (else it starts over, rather than
appending the wrong bytes and blaming tampering)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from agent.aio.backoff import Backoff
from agent.aio.links import SourceStatus
from agent.config import HubConfig
from agent.config.limits import InputLimitError, loads_json
from agent.errors import BundleError
from agent.hublink.client import hub_client
from agent.hublink.desired import (
    DESIRED_MAX_BYTES,
    DownloadError,
    check_desired,
    desired_for,
)
from agent.models.lifecycle import ModelLifecycle

log = logging.getLogger(__name__)

CHUNK = 1 << 16
# one model slot of the agent: its name, its lifecycle, and whether it is the `model:` shorthand
# (whose name comes from its bundle, so a hub's legacy top level may speak for it)
Slot = tuple[str, ModelLifecycle, bool]


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class HubSync:
    def __init__(self, config: HubConfig, gateway_id: str,
                 lifecycle: ModelLifecycle | Callable[[], list[Slot]],
                 extra_report: Callable[[], dict[str, Any]],
                 transport: httpx.AsyncBaseTransport | None = None,
                 on_config: Callable[[dict[str, Any] | None], Awaitable[bool]] | None = None) -> None:
        """``lifecycle``: the one model's, or a function listing the agent's model slots (the
        first is the one the legacy top level of the status report describes)."""
        self.config = config
        self.gateway_id = gateway_id
        if isinstance(lifecycle, ModelLifecycle):
            one = lifecycle
            self.slots: Callable[[], list[Slot]] = lambda: [
                (one.name or (one.active.name if one.active else "default"), one, one.name is None)]
        else:
            self.slots = lifecycle
        self.lifecycle = self.slots()[0][1]  # the first model's (limits, legacy callers)
        self.extra_report = extra_report
        self.on_config = on_config
        self.status = SourceStatus("hub-sync", "hub", role="hub")
        self._transport = transport
        self.etag: str | None = None
        self.desired: dict[str, Any] | None = None
        self.last_success: float | None = None
        self.polls = 0
        self.reports = 0
        # bundles refused on download or verification: retried later with backoff, and reported
        self.refused: dict[str, dict[str, Any]] = {}  # by sha256, with the slot's name
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._rng = random.Random()

    async def run(self) -> None:
        backoff = Backoff(self.config.reconnect)
        next_report = 0.0
        async with hub_client(self.config, self._transport) as client:
            while True:
                try:
                    changed = await self.sync_once(client)
                    if changed or time.monotonic() >= next_report:
                        await self.send_report(client)
                        next_report = time.monotonic() + self.config.report_interval_s
                    backoff.reset()  # (connected: marked by sync_once when its poll was answered)
                    delay = self.config.poll_interval_s * (1 + self.config.poll_jitter * self._rng.random())
                except (httpx.HTTPError, DownloadError) as exc:  # unreachable, or refused our token
                    self._failed(f"{type(exc).__name__}: {exc}")
                    delay = backoff.next_delay()
                await asyncio.sleep(delay)

    async def sync_once(self, client: httpx.AsyncClient) -> bool:
        """One poll; True when the desired state was new (and has been acted on)."""
        headers = {"If-None-Match": self.etag} if self.etag else {}
        limits = self.lifecycle.store.limits
        async with client.stream("GET", f"/api/v1/gateways/{self.gateway_id}/desired",
                                 headers=headers) as r:
            self.polls += 1
            if r.status_code == 304:
                body = b""
            elif r.status_code in (401, 403):
                raise DownloadError(f"the hub refuses this gateway's token ({r.status_code}); "
                                    "check hub.token")
            else:
                r.raise_for_status()
                body = await _read_capped(r, DESIRED_MAX_BYTES)
        # the exchange worked: connected from here, not only once what follows (a download, a
        # verification, an activation, the status report) is done, which over a slow link
        # showed a reachable hub as down for as long
        self._ok()
        if r.status_code == 304:
            await self._retry_pending(client)
            return False
        try:
            doc = check_desired(loads_json(body, limits.json_max_depth, DESIRED_MAX_BYTES))
        except InputLimitError as exc:
            raise DownloadError(f"the hub's desired state is refused: {exc}") from None
        except (ValueError, RecursionError):
            raise DownloadError("the hub's desired state is not JSON") from None
        self.desired = doc
        complete = await self.apply(client, doc)
        # remember the ETag only when everything it asked for is done: otherwise ask again
        self.etag = r.headers.get("etag") if complete else None
        return True

    async def _retry_pending(self, client: httpx.AsyncClient) -> None:
        if self.desired is not None and self._retry_at:
            await self.apply(client, self.desired)

    async def apply(self, client: httpx.AsyncClient, doc: dict[str, Any]) -> bool:
        complete = True
        slots = self.slots()
        for name, lc, shorthand in slots:
            part = desired_for(doc, name, shorthand, len(slots))
            if part is not None and not await self._apply_slot(client, name, lc, part):
                complete = False
        if self.on_config is not None and await self.on_config(doc.get("config")):
            await self.send_report(client)  # the hub hears about a config change at once
        return complete

    async def _apply_slot(self, client: httpx.AsyncClient, slot: str, lc: ModelLifecycle,
                          doc: dict[str, Any]) -> bool:
        complete = True
        model = doc.get("model")
        deployment = doc.get("deployment") or {}
        active_sha = lc.active.bundle.sha256 if lc.active else None
        if model and model.get("sha256") != active_sha and self._wanted(lc, model["sha256"]):
            if await self._fetch(client, slot, lc, model):
                reason = (f"deployed by the hub (deployment {deployment.get('id')}, "
                          f"{deployment.get('strategy', 'immediate')})")
                await lc.activate(model["sha256"], reason, actor="hub")
            else:
                complete = False
        shadow = doc.get("shadow")
        current_shadow = lc.shadow.bundle.sha256 if lc.shadow else None
        if shadow is None and current_shadow is not None:
            lc.stop_shadow("the hub withdrew it")
        elif shadow and shadow.get("sha256") != current_shadow and self._wanted(lc, shadow["sha256"]):
            if shadow["sha256"] == (lc.active.bundle.sha256 if lc.active else None):
                pass  # already promoted
            elif await self._fetch(client, slot, lc, shadow):
                lc.stop_shadow("replaced by a newer shadow")
                terms = {"min_labels": shadow.get("min_labels"), "watch_s": shadow.get("watch_s")}
                await lc.start_shadow(shadow["sha256"], f"shadow deployment {shadow.get('deployment')}",
                                      terms)
            else:
                complete = False
        return complete

    def _wanted(self, lc: ModelLifecycle, sha: str) -> bool:
        if sha in lc.store.state.rejected:
            return False  # rejected here before: never again on the hub's say-so (no loops)
        return time.monotonic() >= self._retry_at.get(sha, 0.0)

    async def _fetch(self, client: httpx.AsyncClient, slot: str, lc: ModelLifecycle,
                     ref: dict[str, Any]) -> bool:
        """Make sure the bundle is installed; False if it is not (yet)."""
        sha = ref["sha256"]
        store = lc.store
        if store.has(sha):
            return True
        label = f"{ref.get('name', '?')} {ref.get('version', '?')}"
        refusal = lc.name_refusal(ref["name"]) if isinstance(ref.get("name"), str) else None
        if refusal:  # before a byte is downloaded: the hub says what it is
            self._refuse(slot, lc, sha, ref, f"{label} refused: {refusal}")
            return False
        try:
            archive = await self._download(client, lc, ref)
            cfg = lc.config
            bundle = await asyncio.to_thread(store.install, archive, list(cfg.trusted_keys),
                                             cfg.allow_unsigned, sha)
            archive.unlink(missing_ok=True)
            refusal = lc.name_refusal(bundle.manifest.name)
            if refusal:
                raise BundleError(refusal)
        except DownloadError as exc:  # the hub sent less than it declared: resume later
            self._refuse(slot, lc, sha, ref, f"{label} not installed: {exc}")
            return False
        except BundleError as exc:
            self._refuse(slot, lc, sha, ref, f"{label} refused: {exc}")
            (store.staging / f"{sha}.part").unlink(missing_ok=True)
            return False
        self.refused.pop(sha, None)
        self._retry_at.pop(sha, None)
        self._failures.pop(sha, None)
        log.info("installed %s from the hub", label)
        return True

    def _refuse(self, slot: str, lc: ModelLifecycle, sha: str, ref: dict[str, Any],
                reason: str) -> None:
        log.error("%s", reason)
        lc.last_error = reason
        failures = self._failures[sha] = self._failures.get(sha, 0) + 1
        delay = min(3600.0, 30.0 * 2 ** (failures - 1))
        self._retry_at[sha] = time.monotonic() + delay
        self.refused[sha] = {"sha256": sha, "name": ref.get("name"), "version": ref.get("version"),
                             "reason": reason, "at": time.time(), "retry_in_s": delay, "slot": slot}

    async def _download(self, client: httpx.AsyncClient, lc: ModelLifecycle,
                        ref: dict[str, Any]) -> Any:
        sha, size, want = ref["sha256"], ref.get("size"), ref.get("archive_sha256")
        cap = lc.store.limits.bundle_max_bytes
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{64}", sha)):
            raise BundleError(f"the hub named a bundle {str(sha)[:80]!r}, not a sha256")
        if size is not None and not (isinstance(size, int) and 0 <= size <= cap):
            raise BundleError(f"the hub declares a bundle of {str(size)[:30]} bytes; "
                              f"limits.bundle_max_bytes is {cap}")
        try:
            url = httpx.URL(ref["url"])
        except httpx.InvalidURL as exc:
            raise BundleError(f"the hub names a bundle URL that is none ({exc})") from None
        if url.is_absolute_url and (_origin(url) != _origin(client.base_url) or url.userinfo):
            raise BundleError(f"the hub names a bundle URL on another origin ({url.host}:{url.port}); "
                              "only the hub itself is asked (the gateway's token goes nowhere else)")
        part = lc.store.staging / f"{sha}.part"
        deadline = self.config.download_timeout_s
        try:
            async with asyncio.timeout(deadline):
                for _ in range(2):  # a second time only from scratch, after a 416
                    if await self._get(client, ref["url"], part, size, cap):
                        break
        except TimeoutError:
            got = part.stat().st_size if part.exists() else 0
            raise DownloadError(f"bundle download did not finish in {deadline:g} s "
                                f"(hub.download_timeout_s; {got} bytes so far); resumes next time") from None
        got = part.stat().st_size if part.exists() else 0
        if size is not None and got < size:
            raise DownloadError(f"bundle download incomplete: {got} of {size} bytes; resumes next time")
        if want is not None:
            digest = await asyncio.to_thread(_sha256, part)
            if digest != want or (size is not None and got != size):
                raise BundleError(f"the downloaded archive's sha256 {digest[:12]} ({got} bytes) is not "
                                  f"the {want[:12]} ({size} bytes) the hub declared (tampered or corrupted)")
        return part

    async def _get(self, client: httpx.AsyncClient, url: str, part: Any, size: int | None,
                   cap: int) -> bool:
        """Fetch what ``part`` lacks; False when it had to be dropped and fetched from scratch
        (the hub no longer serves the range it started)."""
        have = part.stat().st_size if part.exists() else 0
        if size is not None and have > size:
            part.unlink()
            have = 0
        if size is not None and have == size:
            return True
        headers = {"Range": f"bytes={have}-"} if have else {}
        async with client.stream("GET", url, headers=headers) as r:
            if r.status_code == 416:
                if size is not None and have < size:
                    part.unlink()  # the offset means nothing to the hub (a rebuilt archive)
                    return False
                return True  # nothing more to get: what we have is all there is
            if r.status_code not in (200, 206):
                raise DownloadError(f"bundle download answered {r.status_code}")
            start = 0
            if r.status_code == 206:
                match = _CONTENT_RANGE.fullmatch(r.headers.get("content-range", ""))
                start = int(match.group(1)) if match else -1
                if start not in (0, have):
                    part.unlink(missing_ok=True)
                    raise DownloadError(f"the hub answered the range request for bytes {have}- with "
                                        f"{r.headers.get('content-range', 'no Content-Range')[:60]!r}; "
                                        "the download starts over next time")
            mode = "ab" if start == have and have else "wb"
            written = have if mode == "ab" else 0
            with part.open(mode) as fh:
                async for chunk in r.aiter_bytes(CHUNK):
                    written += len(chunk)
                    if written > (size if size is not None else cap):
                        fh.close()
                        part.unlink(missing_ok=True)
                        raise BundleError(f"the hub sent more than the {size or cap} bytes "
                                          "it declared (limits.bundle_max_bytes); refused")
                    fh.write(chunk)
        return True

    def refused_for(self, slot: str) -> list[dict[str, Any]]:
        return [{k: v for k, v in r.items() if k != "slot"} for r in self.refused.values()
                if r.get("slot") == slot]

    async def send_report(self, client: httpx.AsyncClient) -> None:
        slots = self.slots()
        first_name, first, _ = slots[0]
        report = {**self.extra_report(), **first.report()}
        report["rejected"] = report["rejected"] + self.refused_for(first_name)
        for entry in report.get("models") or []:  # each model with its own download refusals
            entry["rejected"] = entry.get("rejected", []) + self.refused_for(str(entry.get("name")))
        report["sync"] = {"polls": self.polls, "last_success": self.last_success,
                          "last_error": self.status.last_error}
        body = json.dumps(report, default=str).encode()
        r = await client.post(f"/api/v1/gateways/{self.gateway_id}/status", content=body,
                              headers={"Content-Type": "application/json"})
        if r.status_code >= 400:
            log.warning("the hub refused the status report: %s %s", r.status_code, r.text[:200])
        else:
            self.reports += 1

    def _ok(self) -> None:
        if not self.status.connected:
            log.info("hub reachable at %s", self.config.url)
        self.status.mark_connected()
        self.last_success = time.time()

    def _failed(self, why: str) -> None:
        if self.status.mark_failed(why):
            log.warning("hub sync failed (%s); the active model keeps running", why)


async def _read_capped(r: httpx.Response, cap: int) -> bytes:
    """The body, but never more than ``cap`` bytes of it in memory."""
    chunks, size = [], 0
    async for chunk in r.aiter_bytes(CHUNK):
        size += len(chunk)
        if size > cap:
            raise DownloadError(f"the hub's desired state is larger than {cap} bytes; refused")
        chunks.append(chunk)
    return b"".join(chunks)


def _sha256(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
