"""Which model version runs: activate, watch, roll back, shadow.

A version becomes active only after its hashes, signature and self-test pass (``load_model``);
the switch is one assignment in the event loop. For ``watch_s`` after an activation the version
it replaced stays loaded and runs on the same inputs, so the new one is judged against it on
the same samples: inference errors, p99 latency, error rate on labelled outcomes. A worse
version is rolled back at once and remembered as rejected, so neither the hub nor a restart
brings it back in a loop. A shadow candidate runs beside the active version; its outputs are
recorded, never published, and the comparison goes to the hub, which decides."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agent.config import ModelConfig
from agent.errors import AgentError, BundleError
from agent.inference.batches import PredictionBatch, SampleBatch
from agent.inference.model import LoadedModel, load_model
from agent.inference.runtimes import RuntimeOutput
from agent.models.batchrun import Computed, decision, timed, watch_reason
from agent.models.comparison import Comparison
from agent.models.scoring import manifest_costs
from agent.models.store import ModelStore

log = logging.getLogger(__name__)

MAX_BOOTS_IN_WATCH = 2  # unclean restarts during a watch: the new version may be what kills the agent


class ModelLifecycle:
    def __init__(self, config: ModelConfig, store: ModelStore,
                 use_model: Callable[[LoadedModel], None],
                 record_event: Callable[[dict[str, Any]], None], name: str | None = None) -> None:
        self.config = config
        self.name = name  # the slot: a bundle of another manifest name is refused
        self.policy = config.rollback
        self.store = store
        self._use_model = use_model
        self._record_event = record_event  # lifecycle events go to the outbox like alarms
        self.active: LoadedModel | None = None
        self.active_since = 0.0
        self.incumbent: LoadedModel | None = None  # the version replaced, during the watch
        self.watch_until: float | None = None
        self.watch_cmp: Comparison | None = None
        self.watch_errors = 0
        self.shadow: LoadedModel | None = None
        self.shadow_since = 0.0
        self.shadow_cmp: Comparison | None = None
        self.shadow_terms: dict[str, Any] = {}
        self.last_error: str | None = None
        self.switches = 0

    # -- loading and switching ----------------------------------------------------------------
    async def load(self, sha256: str) -> LoadedModel:
        model = await asyncio.to_thread(load_model, self.config, self.store.path(sha256),
                                        self.store.staging)
        refusal = self.name_refusal(model.name)
        if refusal:
            raise BundleError(refusal)
        return model

    def name_refusal(self, bundle_name: str) -> str | None:
        if self.name is None or bundle_name == self.name:
            return None
        return (f"models[{self.name}]: the bundle is named '{bundle_name}' in its manifest, not "
                f"'{self.name}'; deploy it to the model of that name (or rename the entry)")

    async def start(self, configured: str | None) -> None:
        """At startup: an operator request, else a watch to resume, else the remembered active
        version, else the configured bundle. A bundle newly named in the config wins, because
        changing the file is an operator's decision."""
        state = self.store.state
        request = self.store.take_request()
        if request is not None and await self.operator_request(request):
            return
        seen = {e["sha256"] for e in state.history}
        if configured and configured not in seen and configured not in state.rejected:
            await self.activate(configured, "configured in model.bundle", watch=state.active is not None)
        elif state.active and self.store.has(state.active):
            await self._resume(state.active)
        elif configured:
            await self.activate(configured, "configured in model.bundle", watch=False)
        if state.shadow and self.store.has(state.shadow) and self.active is not None:
            await self.start_shadow(state.shadow, "resumed after restart", {})

    async def _resume(self, sha: str) -> None:
        watching = self.store.state.history[-1] if self.store.state.history else {}
        in_watch = (watching.get("event") == "activated" and watching.get("sha256") == sha
                    and time.time() < float(watching.get("watch_until") or 0))
        if in_watch:
            watching["boots"] = int(watching.get("boots", 0)) + 1
            self.store.save()
            previous = self.store.state.previous
            if watching["boots"] >= MAX_BOOTS_IN_WATCH and previous and self.store.has(previous):
                name, version = watching.get("name", "?"), watching.get("version", "?")
                reason = f"the agent restarted {watching['boots']} times while watching it"
                log.error("rolling back %s %s: %s", name, version, reason)
                self.store.reject(sha, name, version, reason)
                await self.activate(previous, f"rollback: {reason}", watch=False)
                return
        try:
            model = await self.load(sha)
        except AgentError as exc:
            self.last_error = str(exc)
            log.error("the remembered active version does not load: %s", exc)
            return
        self._switch(model, since=float(watching.get("at") or time.time()) if in_watch else time.time())
        if in_watch and self.store.state.previous and self.store.has(self.store.state.previous):
            try:
                self._begin_watch(await self.load(self.store.state.previous),
                                  float(watching["watch_until"]))
            except AgentError as exc:
                log.warning("previous version not loadable, watch without comparison: %s", exc)

    async def activate(self, sha256: str, reason: str, watch: bool = True, actor: str = "agent") -> bool:
        """Verify, load and self-test, then switch. False (and the reason kept) if it fails."""
        try:
            model = await self.load(sha256)
        except AgentError as exc:
            self._refuse(sha256, f"not activated: {exc}")
            return False
        old = self.active
        if self.shadow is not None and self.shadow.bundle.sha256 == sha256:
            self.stop_shadow("promoted to active")
        state = self.store.state
        if old is not None and old.bundle.sha256 != sha256:
            state.previous = old.bundle.sha256
        state.active = sha256
        until = time.time() + self.policy.watch_s if watch and old is not None else None
        entry = self.store.note(sha256, model.name, model.version, "activated", reason)
        if until is not None:
            entry["watch_until"] = until
            entry["boots"] = 0
        self.store.save()
        self._switch(model, since=time.time())
        if until is not None and old is not None:
            self._begin_watch(old, until)
        self._event("activated", model, reason, actor=actor)
        self.store.prune()
        return True

    def _switch(self, model: LoadedModel, since: float) -> None:
        self.active, self.active_since = model, since
        self.switches += 1
        self.last_error = None
        self._use_model(model)

    def _begin_watch(self, incumbent: LoadedModel, until: float) -> None:
        self.incumbent, self.watch_until, self.watch_errors = incumbent, until, 0
        assert self.active is not None
        same_inputs = incumbent.input_tags == self.active.input_tags
        costs = manifest_costs(self.active.bundle.manifest)  # the newest version's cost matrix
        self.watch_cmp = Comparison(self.active.classes, costs) if same_inputs else None
        log.info("watching %s until %s against %s%s", self.active.bundle.label,
                 time.strftime("%H:%M:%S", time.localtime(until)), incumbent.bundle.label,
                 "" if same_inputs else " (inputs differ: errors only, no side-by-side comparison)")

    def clean_shutdown(self) -> None:
        """A clean stop during a watch is not the new version's fault: only crashes count."""
        last = self.store.state.history[-1] if self.store.state.history else None
        if last is not None and last.get("boots"):
            last["boots"] = 0
            self.store.save()

    def _end_watch(self) -> None:
        self.incumbent, self.watch_until, self.watch_cmp = None, None, None

    def _refuse(self, sha256: str, reason: str) -> None:
        self.last_error = reason
        log.error("%s", reason)
        name, version = "?", sha256[:12]
        try:
            m = json.loads((self.store.path(sha256) / "manifest.json").read_text())
            name, version = m.get("name", name), m.get("version", version)
        except (OSError, ValueError):
            pass
        self.store.reject(sha256, name, version, reason)
        self._record_event({"event": "rejected", "sha256": sha256, "model": name,
                            "version": version, "reason": reason, "at": time.time()})

    def rollback(self, reason: str) -> bool:
        """Back to the version the active one replaced, at once (it is still loaded)."""
        if self.incumbent is None or self.active is None:
            log.error("cannot roll back %s (%s): no previous version loaded",
                      self.active.bundle.label if self.active else "nothing", reason)
            return False
        bad, good = self.active, self.incumbent
        log.error("rolling back %s to %s: %s", bad.bundle.label, good.bundle.label, reason)
        self._end_watch()
        self.store.reject(bad.bundle.sha256, bad.name, bad.version, f"rolled back: {reason}")
        state = self.store.state
        state.active, state.previous = good.bundle.sha256, None
        self.store.note(good.bundle.sha256, good.name, good.version, "activated",
                        f"rollback from {bad.version}: {reason}")
        self.store.save()
        self._switch(good, since=time.time())
        self._event("rolled_back", bad, reason, to_version=good.version)
        return True

    async def operator_request(self, request: dict[str, Any]) -> bool:
        sha = str(request.get("sha256", ""))
        why = f"operator {request.get('by', '?')}: {request.get('reason', '')}".strip()
        if not self.store.has(sha):
            log.error("operator request for %s ignored: not installed", sha[:12])
            return False
        self.store.state.rejected.pop(sha, None)  # an explicit choice overrides a rejection
        if self.active is not None and self.active.bundle.sha256 == sha:
            return True
        rolling_back = request.get("action") == "rollback"
        if rolling_back and self.active is not None:
            a = self.active
            self.store.reject(a.bundle.sha256, a.name, a.version, why)
            self._event("rolled_back", a, why, actor=str(request.get("by", "operator")))
        self._end_watch()
        return await self.activate(sha, why, watch=not rolling_back, actor=str(request.get("by", "operator")))

    # -- shadow -------------------------------------------------------------------------------
    async def start_shadow(self, sha256: str, reason: str, terms: dict[str, Any],
                           actor: str = "hub") -> bool:
        if self.active is None:
            return False
        try:
            model = await self.load(sha256)
        except AgentError as exc:
            self._refuse(sha256, f"shadow not started: {exc}")
            return False
        if model.input_tags != self.active.input_tags:
            self._refuse(sha256, f"shadow not started: {model.bundle.label} reads other inputs "
                         f"than {self.active.bundle.label}; deploy it immediate or canary")
            return False
        self.shadow, self.shadow_since, self.shadow_terms = model, time.time(), terms
        self.shadow_cmp = Comparison(self.active.classes, manifest_costs(model.bundle.manifest))
        self.store.state.shadow = sha256
        self.store.note(sha256, model.name, model.version, "shadow", reason)
        self.store.save()
        self._event("shadow_started", model, reason, actor=actor)
        return True

    def stop_shadow(self, reason: str) -> None:
        if self.shadow is None:
            return
        log.info("shadow %s stopped: %s", self.shadow.bundle.label, reason)
        self._event("shadow_stopped", self.shadow, reason)
        self.shadow, self.shadow_cmp = None, None
        self.store.state.shadow = None
        self.store.save()

    # -- the data path --------------------------------------------------------------------------
    def infer(self, chunk: SampleBatch) -> tuple[PredictionBatch, RuntimeOutput, PredictionBatch | None]:
        """Run the active version (and beside it the incumbent under watch, and the shadow)."""
        return self.settle(chunk, self.compute(chunk))

    def compute(self, chunk: SampleBatch) -> Computed:
        """The inference itself: safe in a worker thread (it only reads which versions run)."""
        model, incumbent, shadow = self.active, self.incumbent, self.shadow
        assert model is not None
        result, elapsed = timed(model, chunk)
        if isinstance(result, AgentError):
            inc, inc_s = timed(incumbent, chunk)
            return Computed(model, None, result, elapsed, incumbent, inc, inc_s, None, None, 0.0)
        inc, inc_s = timed(incumbent, chunk) if self.watch_cmp is not None else (None, 0.0)
        sh, sh_s = timed(shadow, chunk) if self.shadow_cmp is not None else (None, 0.0)
        return Computed(model, result, None, elapsed, incumbent, inc, inc_s, shadow, sh, sh_s)

    def settle(self, chunk: SampleBatch, c: Computed) -> tuple[
            PredictionBatch, RuntimeOutput, PredictionBatch | None]:
        """Book what ``compute`` found, in the event loop: errors, comparisons, a rollback."""
        if c.error is not None:
            if c.incumbent is None or not isinstance(c.incumbent_result, tuple):
                raise c.error
            # the version it replaced is still loaded: it answers for this batch, nothing is lost
            if self.active is c.model:
                self.watch_errors += 1
                log.warning("%s failed on a batch during its watch (%d so far), %s answered: %s",
                            c.model.bundle.label, self.watch_errors, c.incumbent.bundle.label, c.error)
                if self.watch_errors >= self.policy.max_inference_errors:
                    self.rollback(f"{self.watch_errors} inference errors during the watch ({c.error})")
            predictions, out = c.incumbent_result
            return predictions, out, None
        assert c.result is not None
        predictions, out = c.result
        if c.incumbent is not None and c.incumbent is self.incumbent and self.watch_cmp is not None:
            self._side_by_side(self.watch_cmp, c.incumbent, chunk, c.incumbent_result, c.incumbent_s,
                               predictions, c.elapsed, incumbent_is_candidate=False)
        shadow_batch = None
        if c.shadow is not None and c.shadow is self.shadow and self.shadow_cmp is not None:
            shadow_batch = self._side_by_side(self.shadow_cmp, c.shadow, chunk, c.shadow_result,
                                              c.shadow_s, predictions, c.elapsed,
                                              incumbent_is_candidate=True)
        return predictions, out, shadow_batch

    def _side_by_side(self, cmp: Comparison, other: LoadedModel, chunk: SampleBatch,
                      result: tuple[PredictionBatch, RuntimeOutput] | AgentError | None,
                      other_s: float, mine: PredictionBatch, mine_s: float,
                      incumbent_is_candidate: bool) -> PredictionBatch | None:
        if not isinstance(result, tuple):
            cmp.candidate_failures += 1
            log.warning("%s failed beside the active version: %s", other.bundle.label, result)
            return None
        theirs = result[0]
        mine_v, theirs_v = decision(mine), decision(theirs)
        if incumbent_is_candidate:  # shadow: the active version is the incumbent
            cmp.record(chunk.ids, mine_v, theirs_v, mine_s, other_s)
        else:  # watch: the version replaced is the incumbent, the active one the candidate
            cmp.record(chunk.ids, theirs_v, mine_v, other_s, mine_s)
        return theirs

    def on_label(self, sample_id: str, value: Any) -> None:
        if not sample_id:
            return
        for cmp in (self.watch_cmp, self.shadow_cmp):
            if cmp is not None:
                cmp.on_label(sample_id, value)

    # -- periodic judgement ---------------------------------------------------------------------
    async def tick(self) -> None:
        request = self.store.take_request()
        if request is not None:
            await self.operator_request(request)
        self.judge()

    def judge(self, now: float | None = None) -> None:
        if self.watch_until is None or self.active is None:
            return
        now = time.time() if now is None else now
        cmp, p = self.watch_cmp, self.policy
        if cmp is not None:
            if cmp.labelled >= p.min_labels and cmp.candidate_worse(p.cost_margin, p.significance,
                                                                    mae_margin=p.accuracy_margin):
                self.rollback(watch_reason(cmp, p.cost_margin, p.accuracy_margin, p.significance))
                return
            p99 = cmp.p99()
            if (p99 is not None and cmp.latency_batches >= p.min_latency_batches
                    and p99[1] > p.latency_factor * p99[0] and p99[1] * 1e3 > p.latency_floor_ms):
                self.rollback(f"p99 inference time {p99[1] * 1e3:.3g} ms vs {p99[0] * 1e3:.3g} ms "
                              f"of the previous version (factor {p.latency_factor})")
                return
        if now >= self.watch_until:
            log.info("%s passed its watch; %s unloaded", self.active.bundle.label,
                     self.incumbent.bundle.label if self.incumbent else "nothing")
            self._event("confirmed", self.active, "passed the watch period")
            self._end_watch()

    def _event(self, event: str, model: LoadedModel, reason: str, **extra: Any) -> None:
        self._record_event({"event": event, "model": model.name, "version": model.version,
                            "sha256": model.bundle.sha256, "reason": reason, "at": time.time(),
                            **extra})

    # -- reporting ------------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        def brief(m: LoadedModel | None, since: float | None = None) -> dict[str, Any] | None:
            if m is None:
                return None
            doc: dict[str, Any] = {"name": m.name, "version": m.version, "sha256": m.bundle.sha256}
            if since is not None:
                doc["since"] = since
            return doc

        active = brief(self.active, self.active_since)
        if active is not None and self.store.state.history:
            last = next((e for e in reversed(self.store.state.history)
                         if e["sha256"] == active["sha256"] and e["event"] == "activated"), None)
            active["reason"] = last["reason"] if last else None
        watch = None
        if self.watch_until is not None and self.active is not None:
            watch = {**(brief(self.active) or {}), "until": self.watch_until,
                     "against": brief(self.incumbent),
                     "comparison": self.watch_cmp.figures() if self.watch_cmp else None,
                     "inference_errors": self.watch_errors}
        shadow = None
        if self.shadow is not None and self.shadow_cmp is not None:
            figures = self.shadow_cmp.figures()
            need = int(self.shadow_terms.get("min_labels") or 0)
            wait = float(self.shadow_terms.get("watch_s") or 0)
            shadow = {**(brief(self.shadow, self.shadow_since) or {}), "comparison": figures,
                      "decision_ready": figures["labelled"] >= need or (
                          bool(wait) and time.time() - self.shadow_since >= wait)}
        rejected = sorted(self.store.state.rejected.values(), key=lambda r: r.get("at", 0))[-20:]
        return {"active": active, "watch": watch, "shadow": shadow, "rejected": rejected,
                "last_error": self.last_error}
