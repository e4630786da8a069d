"""edge-agent demo: the whole product on one machine, no setup.

Starts an MQTT broker, the simulated moulding line, trains the line's two models on simulated
history (the quality classifier and the cycle-time regressor), builds and signs their bundles,
runs one agent with both models against the line (the quality model comes from the hub, the
cycle-time model from disk), and reports what happened to each.
"""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from agent.demo.bundles import (
    CYCLE_MODEL,
    QUALITY_MODEL,
    prepare_cycle_time,
    prepare_models,
    signing_keys,
)
from agent.demo.config import agent_config, cycle_entry, quality_entry
from agent.demo.console import drift_score, progress, say, shift_lead, show_events, show_versions
from agent.demo.cycletime import CycleBoard, cycle_section
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
from agent.service.agent import Agent
from agent.service.logsetup import setup_logging
from agent.service.unit import ModelUnit
from agent.types import Label

log = logging.getLogger(__name__)


RESIN_AT, CONCEPT_AT = 0.25, 0.45  # where in the run the plant changes (share of the parts)


def run_demo(duration: float, out: Path, speed: float = 300.0) -> int:
    setup_logging("WARNING")
    for name in ("agent.service.agent", "agent.service.unit"):  # the demo prints alarms its own way
        logging.getLogger(name).setLevel(logging.ERROR)
    out.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(out / "state", ignore_errors=True)  # every run starts like a new gateway
    return asyncio.run(_demo(duration, out, speed))


def unit_named(agent: Agent, name: str) -> ModelUnit:
    return next(u for u in agent.units if u.name == name)


def _tee_labels(agent: Agent, board: Scoreboard) -> None:
    """The scoreboard sees each QC verdict as the quality model does."""
    if agent.labels is None:
        return
    inner = agent.labels._deliver

    def tee(label: Label) -> None:
        inner(label)
        board.on_label(label)

    agent.labels._deliver = tee


async def _demo(duration: float, out: Path, speed: float) -> int:
    t0 = time.monotonic()
    say(f"[demo] training {QUALITY_MODEL} 1.0.0 and 1.1.0 and {CYCLE_MODEL} 1.0.0 on simulated "
        f"history -> {out}/bundles")
    signing_keys(out)  # once, before the trainers share it
    (bundles, pub), cycle_bundle = await asyncio.gather(
        asyncio.to_thread(prepare_models, out), asyncio.to_thread(prepare_cycle_time, out))
    async with any_broker() as broker:
        say(f"[demo] MQTT broker ({broker.kind}) on 127.0.0.1:{broker.port}")
        parts = int(duration * speed / CYCLE_S)
        onsets = {"resin": int(parts * RESIN_AT), "concept": int(parts * CONCEPT_AT)}
        options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=speed,
                             cycle_s=CYCLE_S, qc_delay_s=60.0,
                             drift=[DriftStep(kind, part * CYCLE_S) for kind, part in onsets.items()])
        async with SimulatedLine(options) as line:
            say(f"[demo] simulated moulding machine on opc.tcp://127.0.0.1:{options.opcua_port}"
                f"/sim, {speed:g}x real time, about {parts} parts; new resin from part "
                f"{onsets['resin']}, changed relation from part {onsets['concept']} (both touch "
                f"the quality relation, neither the cycle time)")
            cfg_dict = agent_config(out, options.opcua_port, line.ns, broker.port,
                                    [quality_entry(pub), cycle_entry(pub, cycle_bundle, broker.port)])
            hub = await start_hub(out, cfg_dict, pub, bundles[0], speed, others=(cycle_bundle,))
            (out / "agent.yaml").write_text(yaml.safe_dump(cfg_dict, sort_keys=False))
            agent = Agent.from_raw(cfg_dict)
            quality, cycle = unit_named(agent, QUALITY_MODEL), unit_named(agent, CYCLE_MODEL)
            board, cycle_board = Scoreboard(QUALITY_MODEL), CycleBoard(CYCLE_MODEL)
            agent.prediction_listeners += [board.on_predictions, cycle_board.on_predictions]
            agent.event_listeners += [board.on_event, cycle_board.on_event]
            _tee_labels(agent, board)
            source = "from the hub" if hub is not None else f"from {cycle_bundle}"
            say(f"[demo] one agent, two models: {QUALITY_MODEL} (OK/NOK, from the hub; labels: the "
                f"QC verdicts) and {CYCLE_MODEL} (seconds per part, {source}; labels: the measured "
                "cycle times)")
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(agent.run(stop))
                await agent.ready.wait()
                await asyncio.sleep(0.2)
                if agent.health_server is not None:
                    say(f"[demo] agent health and Prometheus metrics on http://127.0.0.1:"
                        f"{agent.health_server.port}/metrics (also /healthz, /readyz)")
                story = await _run_line(agent, quality, cycle, board, cycle_board, line, hub,
                                        bundles, onsets, duration, tg)
                stop.set()
            quality_events = [e for e in agent.events if e.model == QUALITY_MODEL]
            summary = counts(agent, quality, board, line, broker.kind, time.monotonic() - t0)
            summary.update(drift_story(quality_events, board, onsets))
            cycle_holdout = json.loads((cycle_bundle / "manifest.json").read_text())["metrics"]["holdout"]
            # from every event the agent raised, whichever model: which models had incidents
            summary["incidents_by_model"] = {
                m: len({e.incident_id for e in agent.events if e.model == m})
                for m in sorted({e.model for e in agent.events})}
            summary["models"] = {
                QUALITY_MODEL: {"model": summary["model"], "predictions": quality.predictions,
                                "labels_received": quality.labels_received,
                                "incidents": summary["incidents"], "figures": "see loop"},
                CYCLE_MODEL: cycle_section(cycle_board, cycle, line.cycle_times, onsets, cycle_holdout),
            }
            if hub is not None:
                summary.update(hub_figures(hub, agent))
                story.watch_hub(hub.engine, line.parts, time.monotonic(), None)
                await asyncio.to_thread(hub.stop)
                summary["loop"] = loop = loop_figures(story, board, onsets, line.results, summary)
                loop["new_version_holdout"] = headline(version_holdout(hub, story.retrain_version))
                model_cards(hub, out)
                write_report(out, story, board, onsets, loop, summary)
            summary["models"] = summary.pop("models")  # printed last, after the loop
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    print_summary(summary, say)
    say(f"[demo] written to {out}/summary.json, {out}/report.html, {out}/accuracy.png; "
        f"agent config in {out}/agent.yaml")
    ok = summary["predictions"] > 0 and cycle.predictions > 0 and not summary["errors"]
    return 0 if ok else 1


async def _run_line(agent: Agent, quality: ModelUnit, cycle: ModelUnit, board: Scoreboard,
                    cycle_board: CycleBoard, line: SimulatedLine, hub: Any, bundles: list[Path],
                    onsets: dict[str, int], duration: float, tg: asyncio.TaskGroup) -> Story:
    """Run the line for ``duration`` wall seconds and tell what happens; then let the uploader
    take what is buffered."""
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
        shown = show_events(agent.events, board, shown)
        shift_lead(agent, quality)
        if canary_at is not None and time.monotonic() >= canary_at:
            canary_at = None
            await roll_out_canary(hub, bundles[1], line.parts)
        shown_versions = show_versions(quality, shown_versions)
        if story.alarm_wall is None and any(
                e.model == QUALITY_MODEL and e.notify and e.level == "alarm"
                and attribute(board.start_part_of_event(e), onsets) == "concept"
                for e in agent.events[-100:]):
            story.alarm_wall = time.monotonic()
        if hub is not None:
            note = story.watch_hub(hub.engine, line.parts, time.monotonic(),
                                   quality.model.version if quality.model else None)
            if note:
                say(f"[demo]   {note}")
        story.clock.append((time.time(), line.parts))
        if quality.watch is not None:
            story.drift_points.append((line.parts, drift_score(quality.watch)))
        if time.monotonic() >= next_progress or time.monotonic() >= end:
            progress(agent, quality, board, cycle, cycle_board, line, end)
            next_progress += 5.0
    machine.cancel()
    await asyncio.sleep(0.5)
    qc.cancel()
    cycle_board.take_monitor(cycle)
    if hub is not None:
        await agent._flush()
        await drained(agent, 15.0)
    return story
