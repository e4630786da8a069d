"""The demo's summary: what the agent counted, when each warning and alarm fired relative to
the change it answers to, and the summary printed on screen (``loop`` holds the story)."""

from __future__ import annotations

from typing import Any

from agent.demo.scoreboard import Scoreboard
from agent.demo.sim.line import SimulatedLine
from agent.monitor.incidents import IncidentEvent
from agent.service.agent import Agent
from agent.service.unit import ModelUnit

CYCLE_S = 30.0  # simulated seconds per part


START_TOLERANCE_PARTS = 10  # a CUSUM's change point may fall a few parts before the onset


def attribute(start_part: int | None, onsets: dict[str, int]) -> str:
    """The change a notification answers to: the latest one whose onset precedes the estimated
    start of the change behind it (within START_TOLERANCE_PARTS), never the part it fired at."""
    if start_part is None or start_part < 0:
        return "unknown"
    before = [(part, name) for name, part in onsets.items()
              if part <= start_part + START_TOLERANCE_PARTS]
    return max(before)[1] if before else "before drift"


def drift_story(events: list[IncidentEvent], board: Scoreboard, onsets: dict[str, int]) -> dict[str, Any]:
    """The incidents of the quality model and their notifications (one when raised, one per
    escalation), each assigned to the change whose onset precedes the estimated start of the
    change behind it; a persisting cause stays one incident, acknowledged or not."""
    timeline: list[dict[str, Any]] = []
    for e in events:
        if not e.notify:
            continue  # state changes and held-back notifications are counted below
        part = board.part_of_event(e)
        start = board.start_part_of_event(e)
        change = attribute(start, onsets)
        onset = onsets.get(change)
        timeline.append({
            "part": part, "level": e.level, "action": e.action, "incident": e.incident_id,
            "kind": e.kind, "detector": e.detector, "feature": e.feature, "features": e.features,
            "phase": change, "estimated_start_part": start,
            "parts_after_onset": part - onset if onset is not None else None,
            "sim_minutes_after_onset": round((part - onset) * CYCLE_S / 60, 1) if onset is not None else None,
            "reason": e.reason,
        })

    def first(level: str, phase: str, kind: str | None = None) -> dict[str, Any] | None:
        """The first notification at ``level`` or above (an incident may go straight to alarm)."""
        rank = {"warning": 1, "alarm": 2}
        return next((t for t in timeline if rank[t["level"]] >= rank[level] and t["phase"] == phase
                     and (kind is None or t["kind"] == kind)), None)

    return {
        "drift_onsets_part": onsets,
        "first_warning_after_resin": first("warning", "resin"),
        "first_alarm_after_resin": first("alarm", "resin"),
        "first_warning_after_concept": first("warning", "concept"),
        "first_alarm_after_concept": first("alarm", "concept"),
        # a changed relation leaves the inputs alone: the labels are what can see it
        "first_performance_alarm_after_concept": first("alarm", "concept", "performance"),
        "false_alarms_before_drift": sum(1 for t in timeline if t["phase"] == "before drift"
                                         and t["level"] == "alarm"),
        "incidents": len({e.incident_id for e in events}),
        "notifications": len(timeline),
        "notifications_per_change": {c: sum(1 for t in timeline if t["phase"] == c)
                                     for c in ("before drift", *onsets, "unknown")},
        "notifications_held_back": sum(1 for e in events if e.suppressed == "flood"),
        "incidents_acknowledged": sum(1 for e in events if e.action == "acknowledged"),
        "alarm_timeline": timeline,
    }


def counts(agent: Agent, unit: ModelUnit, board: Scoreboard, line: SimulatedLine, broker: str,
           wall: float) -> dict[str, Any]:
    """What the agent counted; samples, predictions and labels are the quality model's (the
    cycle-time model has its own section), errors are every model's."""
    stats = agent.outbox_stats
    readings = sum(s.status.readings for s in agent.sources)
    errors = {
        "inference_errors": agent.inference_errors,
        "dropped_readings": agent.dropped_readings,
        "component_restarts": sum(h.restarts for h in agent.health.values()),
    }
    return {
        "broker": broker,
        "wall_seconds": round(wall, 1),
        "parts_made": line.parts,
        "readings": readings,
        "models_on_gateway": [u.name for u in agent.units],
        "samples": unit.builder.samples if unit.builder else 0,
        "invalid_samples": unit.builder.invalid_total if unit.builder else 0,
        # parts the part counter skipped: made while the OPC UA session was being re-established
        # (a reconnect below), never seen, so never scored; counted rather than lost silently
        "parts_missed": unit.builder.parts_missed if unit.builder else 0,
        "source_reconnects": sum(s.status.reconnects for s in agent.sources),
        "predictions": unit.predictions,
        "published_all_models": agent.publisher.published if agent.publisher else 0,
        "labels_received": unit.labels_received,
        "labels_joined": board.joined,
        "rolling_accuracy": None if board.accuracy is None else round(board.accuracy, 4),
        "outbox_records": stats.depth if stats else 0,
        "outbox_items": stats.items if stats else 0,
        "outbox_bytes": stats.bytes if stats else 0,
        "evicted": stats.evicted_items if stats else 0,
        "model": unit.model.bundle.label if unit.model else None,
        "errors": {k: v for k, v in errors.items() if v},
    }



LOOP_FIGURES = ("before_drift", "after_resin", "at_worst", "after_recovery", "new_version_holdout")


def print_summary(summary: dict[str, Any], say: Any) -> None:
    say("\n[demo] summary")
    for key, value in summary.items():
        if key == "alarm_timeline":
            say(f"  {key:38} {len(value)} notifications (see summary.json)")
        elif key == "loop":
            for k, v in value.items():
                if k in LOOP_FIGURES:
                    say(f"  {k:38} " + ", ".join(f"{n} {x}" for n, x in v.items()))
                elif k == "retrain_decisions":
                    say(f"  {k:38} {len(v)} (see summary.json)")
                elif k == "retrains":
                    say(f"  {k:38} " + f"\n  {'':38} ".join(
                        f"part {r['part']}: {r['status']} {r['version'] or ''}: {r['decision']}" for r in v))
                else:
                    say(f"  {k:38} {v}")
        elif key == "models":
            for name, figures in value.items():
                say(f"  {'model ' + name:38} " + f"\n  {'':38} ".join(
                    f"{k}: {v}" for k, v in figures.items()))
        elif key == "version_history":
            say(f"  {key:38} " + f"\n  {'':38} ".join(value))
        elif isinstance(value, dict) and key.startswith("first_"):
            say(f"  {key:38} part {value['part']} ({value['parts_after_onset']} parts, "
                f"{value['sim_minutes_after_onset']} min after onset): {value['kind']}/"
                f"{value['detector']}{' [' + value['feature'] + ']' if value['feature'] else ''}")
        else:
            say(f"  {key:38} {value}")
