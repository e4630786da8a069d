"""edge-agent demo: the whole product on one machine, no setup.

Starts an MQTT broker, the simulated moulding line, trains a first model on simulated history,
builds and signs its bundle, runs the agent against the line, and reports what happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import sys
import time
from pathlib import Path

import yaml

from agent.demo.bundles import CYCLE_MODEL, QUALITY_MODEL, prepare_cycle_time, prepare_models, signing_keys
from agent.demo.config import agent_config, cycle_entry, quality_entry
from agent.demo.hub import (
    CANARY_AT,
    drained,
    hub_figures,
    model_cards,
    roll_out_canary,
    start_hub,
    version_holdout,
)
from agent.demo.report import write_report
from agent.demo.scoreboard import Scoreboard, headline
from agent.demo.sim.broker import any_broker, free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import DriftStep
from agent.demo.story import Story, loop_figures
from agent.demo.summary import CYCLE_S, attribute, counts, drift_story, print_summary
from agent.monitor.watch import ModelWatch, write_request
from agent.service.agent import Agent
from agent.service.logsetup import setup_logging
from agent.types import Label

log = logging.getLogger(__name__)


RESIN_AT, CONCEPT_AT = 0.25, 0.45  # where in the run the plant changes (share of the parts)


def run_demo(duration: float, out: Path, speed: float = 300.0) -> int:
    setup_logging("WARNING")
    logging.getLogger("agent.service.agent").setLevel(logging.ERROR)  # the demo prints alarms its own way
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "state", ignore_errors=True)  # every run starts like a new gateway
    return asyncio.run(_demo(duration, out, speed))


async def _demo(duration: float, out: Path, speed: float) -> int:
    t0 = time.monotonic()
    _say(f"[demo] training {QUALITY_MODEL} 1.0.0 and 1.1.0 and {CYCLE_MODEL} 1.0.0 on simulated "
         f"history -> {out}/bundles")
    signing_keys(out)  # once, before the trainers share it
    (bundles, pub), cycle_bundle = await asyncio.gather(
        asyncio.to_thread(prepare_models, out), asyncio.to_thread(prepare_cycle_time, out))
    async with any_broker() as broker:
        _say(f"[demo] MQTT broker ({broker.kind}) on 127.0.0.1:{broker.port}")
        parts = int(duration * speed / CYCLE_S)
        onsets = {"resin": int(parts * RESIN_AT), "concept": int(parts * CONCEPT_AT)}
        options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=speed,
                             cycle_s=CYCLE_S, qc_delay_s=60.0,
                             drift=[DriftStep(kind, part * CYCLE_S) for kind, part in onsets.items()])
        async with SimulatedLine(options) as line:
            _say(f"[demo] simulated moulding machine on opc.tcp://127.0.0.1:{options.opcua_port}"
                 f"/sim, {speed:g}x real time, about {parts} parts; new resin from part "
                 f"{onsets['resin']}, changed relation from part {onsets['concept']}")
            cfg_dict = agent_config(out, options.opcua_port, line.ns, broker.port,
                                    [quality_entry(pub), cycle_entry(pub, cycle_bundle, broker.port)])
            hub = await start_hub(out, cfg_dict, pub, bundles[0], speed)
            (out / "agent.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
            agent = Agent.from_raw(cfg_dict)
            board = Scoreboard()
            agent.prediction_listeners.append(board.on_predictions)
            agent.event_listeners.append(board.on_event)
            if agent.labels is not None:
                inner = agent.labels._deliver

                def tee(label: Label) -> None:
                    inner(label)
                    board.on_label(label)

                agent.labels._deliver = tee
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(agent.run(stop))
                await agent.ready.wait()
                await asyncio.sleep(0.2)
                if agent.health_server is not None:
                    _say(f"[demo] agent health and Prometheus metrics on http://127.0.0.1:"
                         f"{agent.health_server.port}/metrics (also /healthz, /readyz)")
                machine = tg.create_task(line.run_machine())
                qc = tg.create_task(line.run_qc_station())
                end = time.monotonic() + duration
                canary_at = time.monotonic() + duration * CANARY_AT if hub is not None else None
                shown = 0
                shown_versions = ""
                story = Story()
                next_progress = time.monotonic() + 5.0
                while time.monotonic() < end:
                    await asyncio.sleep(min(0.5, max(0.05, end - time.monotonic())))
                    shown = _show_events(agent, board, shown)
                    _shift_lead(agent)
                    if canary_at is not None and time.monotonic() >= canary_at:
                        canary_at = None
                        await roll_out_canary(hub, bundles[1], line.parts)
                    shown_versions = _show_versions(agent, shown_versions)
                    if story.alarm_wall is None and any(
                            e.notify and e.level == "alarm"
                            and attribute(board.start_part_of_event(e), onsets) == "concept"
                            for e in agent.events[-100:]):
                        story.alarm_wall = time.monotonic()
                    if hub is not None:
                        note = story.watch_hub(hub.engine, line.parts, time.monotonic(),
                                               agent.model.version if agent.model else None)
                        if note:
                            _say(f"[demo]   {note}")
                    story.clock.append((time.time(), line.parts))
                    if agent.watch is not None:
                        story.drift_points.append((line.parts, drift_score(agent.watch)))
                    if time.monotonic() >= next_progress or time.monotonic() >= end:
                        _progress(agent, board, line, end)
                        next_progress += 5.0
                machine.cancel()
                await asyncio.sleep(0.5)
                qc.cancel()
                if hub is not None:  # let the uploader take what is buffered before stopping
                    await agent._flush()
                    await drained(agent, 15.0)
                stop.set()
            summary = counts(agent, board, line, broker.kind, time.monotonic() - t0)
            summary.update(drift_story(agent, board, onsets))
            if hub is not None:
                summary.update(hub_figures(hub, agent))
                story.watch_hub(hub.engine, line.parts, time.monotonic(), None)
                await asyncio.to_thread(hub.stop)
                summary["loop"] = loop = loop_figures(story, board, onsets, line.results, summary)
                loop["new_version_holdout"] = headline(version_holdout(hub, story.retrain_version))
                model_cards(hub, out)
                write_report(out, story, board, onsets, loop, summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary, _say)
    _say(f"[demo] written to {out}/summary.json, {out}/report.html, {out}/accuracy.png; "
         f"agent config in {out}/agent.yaml")
    return 0 if summary["predictions"] > 0 and not summary["errors"] else 1


def _show_versions(agent: Agent, shown: str) -> str:
    lc = agent.lifecycle
    if lc is None or lc.active is None:
        return shown
    state = f"{lc.active.version}|{lc.incumbent.version if lc.incumbent else ''}"
    if state != shown:
        if lc.incumbent is not None:
            _say(f"[demo]   model {lc.active.version} active, watched against {lc.incumbent.version} "
                 f"for {agent.config.model.rollback.watch_s:g} s")
        else:
            _say(f"[demo]   model {lc.active.version} active")
    return state


ACK_AFTER_PARTS = 30  # the shift lead acknowledges an alarm after about 15 minutes


def _shift_lead(agent: Agent) -> None:
    """An alarm incident latches until someone acknowledges it; in the demo a shift lead does,
    once it has been up for a while. The problem may persist: the incident then stays open,
    acknowledged, and does not come back as a new alarm."""
    watch = agent.watch
    inc = watch.incidents.current if watch is not None else None
    if watch is None or inc is None or inc.level != "alarm" or inc.acknowledged_by is not None:
        return
    if watch.requests.is_dir() and any(watch.requests.glob("*.json")):
        return  # one request at a time
    if watch.monitor.samples - inc.opened_index >= ACK_AFTER_PARTS:
        write_request(agent.config.state_dir, "ack", inc.id, inc.model, "demo shift lead")
        _say(f"[demo]   shift lead acknowledges incident {inc.id}")


def _show_events(agent: Agent, board: Scoreboard, shown: int) -> int:
    """Notifications only: one when an incident is raised, one when it escalates."""
    for e in agent.events[shown:]:
        if not e.notify:
            continue
        part = board.part_of_event(e)
        what = f"{e.kind}/{e.detector}{' [' + e.feature + ']' if e.feature else ''}" if e.kind else ""
        _say(f"[demo]   {e.level.upper():7} part {part}: incident {e.incident_id} {e.action} "
             f"({e.reason}){' ' + what if what and what not in e.reason else ''}")
    return len(agent.events)


def _progress(agent: Agent, board: Scoreboard, line: SimulatedLine, end: float) -> None:
    acc = board.accuracy
    stats = agent.outbox_stats
    _say(f"[demo] {max(0, end - time.monotonic()):5.0f}s left | parts {line.parts:5d} | "
         f"predictions {agent.predictions:5d} | labels {agent.labels_received:5d} | "
         f"accuracy(last 200) {'-' if acc is None else f'{acc:.3f}'} | "
         f"outbox {stats.depth if stats else 0} records | health "
         f"{agent.watch.incidents.worst().upper() if agent.watch else '-'}")


def drift_score(watch: ModelWatch) -> float:
    """The largest score of the PSI and CUSUM detectors as a share of its alarm level: 1 is
    where an alarm fires, whichever detector it is."""
    mon = watch.monitor
    ratios = [0.0]
    psi_alarm, h = getattr(mon, "psi_alarm", None), getattr(getattr(mon, "cusum", None), "h", None)
    if psi_alarm is not None:
        ratios.append(float((mon.psi.last / psi_alarm).max()))
    if h is not None:
        ratios.append(float((mon.cusum.score / h).max()))
    return round(max(ratios), 4)


def _say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)
