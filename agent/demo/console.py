"""What the demo prints while it runs: version switches of the quality model, notifications of
every model (each with the model's name), the shift lead's acknowledgements and a progress line
every few seconds."""

from __future__ import annotations

import sys
import time

from agent.demo.cycletime import CycleBoard
from agent.demo.scoreboard import Scoreboard
from agent.demo.sim.line import SimulatedLine
from agent.monitor.incidents import IncidentEvent
from agent.monitor.watch import ModelWatch, write_request
from agent.service.agent import Agent
from agent.service.unit import ModelUnit

ACK_AFTER_PARTS = 30  # the shift lead acknowledges an alarm after about 15 minutes


def say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def show_versions(unit: ModelUnit, shown: str) -> str:
    lc = unit.lifecycle
    if lc is None or lc.active is None:
        return shown
    state = f"{lc.active.version}|{lc.incumbent.version if lc.incumbent else ''}"
    if state != shown:
        if lc.incumbent is not None:
            say(f"[demo]   {unit.name} {lc.active.version} active, watched against "
                f"{lc.incumbent.version} for {unit.entry.rollback.watch_s:g} s")
        else:
            say(f"[demo]   {unit.name} {lc.active.version} active")
    return state


def shift_lead(agent: Agent, unit: ModelUnit) -> None:
    """An alarm incident latches until someone acknowledges it; in the demo a shift lead does,
    once it has been up for a while. The problem may persist: the incident then stays open,
    acknowledged, and does not come back as a new alarm."""
    watch = unit.watch
    inc = watch.incidents.current if watch is not None else None
    if watch is None or inc is None or inc.level != "alarm" or inc.acknowledged_by is not None:
        return
    if watch.requests.is_dir() and any(watch.requests.glob("*.json")):
        return  # one request at a time
    if watch.monitor.samples - inc.opened_index >= ACK_AFTER_PARTS:
        write_request(agent.config.state_dir, "ack", inc.id, inc.model, "demo shift lead")
        say(f"[demo]   shift lead acknowledges incident {inc.id} of {inc.model}")


def show_events(events: list[IncidentEvent], board: Scoreboard, shown: int) -> int:
    """Notifications only: one when an incident is raised, one when it escalates."""
    for e in events[shown:]:
        if not e.notify:
            continue
        part = board.part_of_event(e) if e.model == board.model else "?"
        what = f"{e.kind}/{e.detector}{' [' + e.feature + ']' if e.feature else ''}" if e.kind else ""
        say(f"[demo]   {e.level.upper():7} part {part}: {e.model} incident {e.incident_id} "
            f"{e.action} ({e.reason}){' ' + what if what and what not in e.reason else ''}")
    return len(events)


def progress(agent: Agent, quality: ModelUnit, board: Scoreboard, cycle: ModelUnit,
             cycle_board: CycleBoard, line: SimulatedLine, end: float) -> None:
    acc = board.accuracy
    stats = agent.outbox_stats
    recent = max(cycle_board.predicted, default=0)
    mae = cycle_board.errors(line.cycle_times, recent - 200, recent + 1)["mae_s"]
    say(f"[demo] {max(0, end - time.monotonic()):5.0f}s left | parts {line.parts:5d} | "
        f"{quality.name}: predictions {quality.predictions:5d}, labels {quality.labels_received:5d}, "
        f"accuracy(last 200) {'-' if acc is None else f'{acc:.3f}'}, health "
        f"{quality.watch.incidents.worst().upper() if quality.watch else '-'} | {cycle.name}: "
        f"predictions {cycle.predictions:5d}, MAE(last 200) {'-' if mae is None else f'{mae:.3f} s'}, "
        f"health {cycle.watch.incidents.worst().upper() if cycle.watch else '-'} | "
        f"outbox {stats.depth if stats else 0} records")


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
