"""The demo's summary: what the agent counted, when each warning and alarm fired relative to
the change it answers to, and the summary printed on screen (``loop`` holds the story)."""

from __future__ import annotations

from typing import Any

from agent.demo.scoreboard import Scoreboard
from agent.demo.sim.line import SimulatedLine
from agent.service.agent import Agent

CYCLE_S = 30.0  # simulated seconds per part


PHASES = ("before drift", "resin", "concept")


def drift_story(agent: Agent, board: Scoreboard, onsets: dict[str, int]) -> dict[str, Any]:
    """When each warning and alarm fired, in parts after the change it answers to. An alarm
    answers to the change whose onset precedes its estimated start (not merely its part), and a
    detector and feature that went off under an earlier change and comes back after an
    acknowledgement while that change goes on is still that change's (the same cause). (The
    monitor's incidents will make the second rule the agent's own.)"""
    resin, concept = onsets["resin"], onsets["concept"]

    def phase_of(part: int) -> str:
        return "concept" if part >= concept else ("resin" if part >= resin else "before drift")

    timeline: list[dict[str, Any]] = []
    first_phase: dict[tuple[str, str, str | None], str] = {}
    for e in agent.events:
        if e.level not in ("warning", "alarm"):
            continue
        part = board.part_of_event(e)
        start = board.event_parts.get(id(e), (-1, None))[1]
        phase, attributed = phase_of(part), "part"
        if start is not None and 0 <= start <= part and phase_of(start) not in ("before drift", phase):
            phase, attributed = phase_of(start), "estimated start"  # an earlier change's alarm
        key = (e.kind, e.detector, e.feature)
        earlier = first_phase.setdefault(key, phase)
        if PHASES.index(earlier) < PHASES.index(phase) and earlier != "before drift":
            phase, attributed = earlier, "raised again after an acknowledgement under the same change"
        onset = concept if phase == "concept" else resin
        timeline.append({
            "part": part, "level": e.level, "kind": e.kind, "detector": e.detector,
            "feature": e.feature, "phase": phase, "attributed_by": attributed,
            "parts_after_onset": part - onset if phase != "before drift" else None,
            "sim_minutes_after_onset": round((part - onset) * CYCLE_S / 60, 1)
            if phase != "before drift" else None,
            "estimated_start_part": start,
        })

    def first(level: str, phase: str, kind: str | None = None) -> dict[str, Any] | None:
        return next((t for t in timeline if t["level"] == level and t["phase"] == phase
                     and (kind is None or t["kind"] == kind)), None)

    return {
        "drift_onsets_part": onsets,
        "first_warning_after_resin": first("warning", "resin"),
        "first_alarm_after_resin": first("alarm", "resin"),
        "first_warning_after_concept": first("warning", "concept"),
        "first_alarm_after_concept": first("alarm", "concept"),
        # a changed relation leaves the inputs alone: the labels are what can see it
        "first_performance_alarm_after_concept": first("alarm", "concept", "performance"),
        "false_alarms_before_drift": sum(1 for t in timeline if t["part"] < resin
                                         and t["level"] == "alarm"),
        "alarms_acknowledged": sum(1 for e in agent.events if e.level == "ok"
                                   and any("acknowledged" in f for f in e.top_features)),
        "alarm_timeline": timeline,
    }



def counts(agent: Agent, board: Scoreboard, line: SimulatedLine, broker: str,
             wall: float) -> dict[str, Any]:
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
        "samples": agent.builder.samples if agent.builder else 0,
        "invalid_samples": agent.builder.invalid_total if agent.builder else 0,
        "predictions": agent.predictions,
        "published": agent.publisher.published if agent.publisher else 0,
        "labels_received": agent.labels_received,
        "labels_joined": board.joined,
        "rolling_accuracy": None if board.accuracy is None else round(board.accuracy, 4),
        "outbox_records": stats.depth if stats else 0,
        "outbox_items": stats.items if stats else 0,
        "outbox_bytes": stats.bytes if stats else 0,
        "evicted": stats.evicted_items if stats else 0,
        "model": agent.model.bundle.label if agent.model else None,
        "errors": {k: v for k, v in errors.items() if v},
    }



LOOP_FIGURES = ("before_drift", "after_resin", "at_worst", "after_recovery", "new_version_holdout")


def print_summary(summary: dict[str, Any], say: Any) -> None:
    say("\n[demo] summary")
    for key, value in summary.items():
        if key == "alarm_timeline":
            say(f"  {key:38} {len(value)} warnings/alarms (see summary.json)")
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
        elif key == "version_history":
            say(f"  {key:38} " + f"\n  {'':38} ".join(value))
        elif isinstance(value, dict) and key.startswith("first_"):
            say(f"  {key:38} part {value['part']} ({value['parts_after_onset']} parts, "
                f"{value['sim_minutes_after_onset']} min after onset): {value['kind']}/"
                f"{value['detector']}{' [' + value['feature'] + ']' if value['feature'] else ''}")
        else:
            say(f"  {key:38} {value}")
