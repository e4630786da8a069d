"""The demo's closing of the loop, told in parts of the simulated line: when the retrain started
and the new version went active, and how the model did before the drift, at its worst and after
recovery, judged on what a plant cares about (NOK recall, balanced accuracy, cost per part; an
always-OK model fails it). The report is drawn by ``agent.demo.report``."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from agent.demo.scoreboard import WINDOW, Scoreboard, curves, headline

RECOVERY_TOLERANCE = 0.05  # after recovery, balanced accuracy within this of before the drift
RECOVERY_NOK_RECALL = 0.7  # and at least this share of the NOK parts caught


@dataclass
class Story:
    retrain_started_part: int | None = None
    retrain_version: str | None = None
    retrain_status: str | None = None
    new_version_active_part: int | None = None
    alarm_wall: float | None = None
    retrain_wall: float | None = None
    active_wall: float | None = None
    drift_points: list[tuple[int, float]] = field(default_factory=list)  # part, drift score
    versions_seen: list[tuple[int, str]] = field(default_factory=list)
    clock: list[tuple[float, int]] = field(default_factory=list)  # (time.time(), part), for the hub's rows
    runs: list[dict[str, Any]] = field(default_factory=list)  # every retrain decision of the hub

    def part_at(self, ts: float) -> int | None:
        """The part the line was making at wall time ``ts`` (time.time())."""
        if not self.clock:
            return None
        i = bisect.bisect_right([c[0] for c in self.clock], ts)
        return self.clock[max(0, i - 1)][1]

    def watch_hub(self, engine: Any, part: int, now: float, active_version: str | None) -> str | None:
        """Follow the hub's retrain runs; returns a line to print when something changed."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from hub.storage import RetrainRun

        msg = None
        with Session(engine) as s:
            rows = list(s.scalars(select(RetrainRun).order_by(RetrainRun.id)))
            s.expunge_all()
        for run in rows[len(self.runs):]:
            if run.status == "running":
                break  # wait for its outcome before taking it
            self.runs.append({"part": self.part_at(run.at), "status": run.status, "version": run.version,
                              "reason": run.trigger, "decision": (run.detail or {}).get("decision")
                              or (run.detail or {}).get("error")})
            if run.status == "skipped":
                msg = f"part {part}: the hub waits: {run.trigger}"
        started = [r for r in rows if r.status != "skipped"]
        if started and self.retrain_started_part is None:
            self.retrain_started_part, self.retrain_wall = self.part_at(started[0].at) or part, now
            msg = f"part {part}: the hub retrains: {started[0].trigger}"
        last = started[-1] if started else None
        if last is not None and last.status not in ("running", self.retrain_status):
            self.retrain_status, self.retrain_version = last.status, last.version
            d = last.detail or {}
            verdict = d.get("decision") or d.get("error")
            msg = f"part {part}: retrain {last.status} {last.version or ''}: {verdict}"
        if (self.retrain_version and active_version == self.retrain_version
                and self.new_version_active_part is None):
            self.new_version_active_part, self.active_wall = part, now
            msg = f"part {part}: {active_version} active on the gateway"
        if active_version and (not self.versions_seen or self.versions_seen[-1][1] != active_version):
            self.versions_seen.append((part, active_version))
        return msg


def nok_share(results: dict[int, bool], first: int, last: int) -> float | None:
    """Share of NOK parts the line made in first <= part < last (every part, labelled or not)."""
    oks = [ok for part, ok in results.items() if first <= part < last]
    return round(sum(not ok for ok in oks) / len(oks), 4) if oks else None


def recovery(loop: dict[str, Any]) -> dict[str, Any]:
    """Did the loop restore the ability to catch bad parts? Judged on NOK recall and balanced
    accuracy against before the drift, never on accuracy (an always-OK model would pass that)."""
    before, after = loop.get("before_drift") or {}, loop.get("after_recovery") or {}
    b, a, r = before.get("balanced_accuracy"), after.get("balanced_accuracy"), after.get("nok_recall")
    reasons = []
    if a is None or b is None or r is None:
        reasons.append("no labelled parts after a new version went active")
    else:
        if a < b - RECOVERY_TOLERANCE:
            reasons.append(f"balanced accuracy {a} more than {RECOVERY_TOLERANCE} below {b} before the drift")
        if r < RECOVERY_NOK_RECALL:
            reasons.append(f"NOK recall {r} below {RECOVERY_NOK_RECALL}")
    return {"recovered": not reasons, "why_not": reasons,
            "rule": f"after recovery NOK recall >= {RECOVERY_NOK_RECALL} and balanced accuracy within "
                    f"{RECOVERY_TOLERANCE} of before the drift"}


def incident_counts(timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Per phase, how many incidents and notifications the operators got. Until the monitor
    groups alarms into incidents, an incident is a detector/feature that went to alarm and a
    notification is a warning or alarm transition; the monitor's own counts replace these."""
    out: dict[str, Any] = {}
    for phase in ("before drift", "resin", "concept"):
        rows = [t for t in timeline if t["phase"] == phase]
        alarms = {(t["kind"], t["detector"], t["feature"]) for t in rows if t["level"] == "alarm"}
        out[phase.replace(" ", "_")] = {"incidents": len(alarms), "notifications": len(rows)}
    out["source"] = "alarm transitions"
    return out


def loop_figures(story: Story, board: Scoreboard, onsets: dict[str, int], results: dict[int, bool],
                 summary: dict[str, Any]) -> dict[str, Any]:
    last = max(board.by_part, default=0) + 1
    fixed = story.new_version_active_part
    points = [p for p in curves(board.by_part)
              if p["part"] >= onsets["concept"] + WINDOW and (fixed is None or p["part"] <= fixed + WINDOW)
              and p["balanced_accuracy"] is not None]
    worst = min(points, key=lambda p: p["balanced_accuracy"]) if points else None
    recovered_from = (fixed or last) + 20
    first_alarm = summary.get("first_alarm_after_concept") or {}
    first_warning = summary.get("first_warning_after_concept") or {}
    loop: dict[str, Any] = {
        "drift_onset_part": onsets["concept"],
        "nok_share_before_drift": nok_share(results, 0, onsets["resin"]),
        "nok_share_after_resin": nok_share(results, onsets["resin"], onsets["concept"]),
        "nok_share_after_relation_change": nok_share(results, onsets["concept"], max(results, default=0) + 1),
        "first_warning_part": first_warning.get("part"),
        "first_alarm_part": first_alarm.get("part"),
        "samples_onset_to_first_warning": first_warning.get("parts_after_onset"),
        "samples_onset_to_first_alarm": first_alarm.get("parts_after_onset"),
        "retrain_started_part": story.retrain_started_part,
        "retrain_result": story.retrain_status,
        "new_version": story.retrain_version,
        "new_version_active_part": fixed,
        "wall_s_retrain_start_to_active": round(story.active_wall - story.retrain_wall, 1)
        if story.active_wall and story.retrain_wall else None,
        # includes waiting for enough labelled parts of the new behaviour to train on
        "wall_s_alarm_to_new_version_active": round(story.active_wall - story.alarm_wall, 1)
        if story.active_wall and story.alarm_wall else None,
        "before_drift": headline(board.scores_between(0, onsets["resin"])),
        "after_resin": headline(board.scores_between(onsets["resin"], onsets["concept"])),
        "at_worst": {k: v for k, v in (worst or headline(None)).items() if k != "part"}
        | {"window_parts": WINDOW, "ending_at_part": worst["part"] if worst else None},
        # the new version's own calls: a part its predecessor answered for is not its record
        "after_recovery": headline(board.scores_between(recovered_from, last, story.retrain_version))
        if fixed else headline(None),
        "after_recovery_parts_by_version": board.versions_between(recovered_from, last) if fixed else {},
        "retrains": [r for r in story.runs if r["status"] != "skipped"],
        "retrain_decisions": story.runs,
        "incidents": incident_counts(summary.get("alarm_timeline") or []),
    }
    loop["recovery"] = recovery(loop)
    return loop
