"""The demo's closing of the loop, told in parts of the simulated line: when the retrain started
and the new version went active, accuracy before the drift, at its worst and after recovery,
and the report (report.html, accuracy.png) that shows it."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WINDOW = 50  # parts per point of the accuracy curve


@dataclass
class Story:
    retrain_started_part: int | None = None
    retrain_version: str | None = None
    retrain_status: str | None = None
    new_version_active_part: int | None = None
    alarm_wall: float | None = None
    retrain_wall: float | None = None
    active_wall: float | None = None
    drift_points: list[tuple[int, float]] = field(default_factory=list)
    versions_seen: list[tuple[int, str]] = field(default_factory=list)

    def watch_hub(self, engine: Any, part: int, now: float, active_version: str | None) -> str | None:
        """Follow the hub's retrain runs; returns a line to print when something changed."""
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from hub.storage import RetrainRun

        msg = None
        with Session(engine) as s:
            run = s.scalars(select(RetrainRun).where(RetrainRun.status != "skipped")
                            .order_by(RetrainRun.id.desc()).limit(1)).first()
            if run is not None and self.retrain_started_part is None:
                self.retrain_started_part, self.retrain_wall = part, now
                msg = f"part {part}: the hub retrains: {run.trigger}"
            if run is not None and run.status != self.retrain_status and run.status != "running":
                self.retrain_status, self.retrain_version = run.status, run.version
                d = run.detail or {}
                msg = (f"part {part}: retrain {run.status} {run.version or ''}: challenger accuracy "
                       f"{d.get('challenger_accuracy')} vs champion {d.get('champion_accuracy')} "
                       f"({d.get('champion')}) on {d.get('holdout_rows')} recent labelled parts")
        if (self.retrain_version and active_version == self.retrain_version
                and self.new_version_active_part is None):
            self.new_version_active_part, self.active_wall = part, now
            msg = f"part {part}: {active_version} active on the gateway"
        if active_version and (not self.versions_seen or self.versions_seen[-1][1] != active_version):
            self.versions_seen.append((part, active_version))
        return msg


def accuracy_curve(by_part: dict[int, bool]) -> list[tuple[int, float]]:
    parts = sorted(by_part)
    return [(parts[i + WINDOW - 1], sum(by_part[p] for p in parts[i:i + WINDOW]) / WINDOW)
            for i in range(0, max(0, len(parts) - WINDOW + 1), 5)]


def story_figures(story: Story, board: Any, onsets: dict[str, int],
                  summary: dict[str, Any]) -> dict[str, Any]:
    last = max(board.by_part, default=0) + 1
    curve = accuracy_curve(board.by_part)
    fixed = story.new_version_active_part
    after_concept = [a for p, a in curve if p >= onsets["concept"] + WINDOW
                     and (fixed is None or p <= fixed + WINDOW)]
    recovered_from = (story.new_version_active_part or last) + 20
    before = board.accuracy_between(0, onsets["resin"])
    after = board.accuracy_between(recovered_from, last) if story.new_version_active_part else None
    first_alarm = summary.get("first_alarm_after_concept") or {}
    first_warning = summary.get("first_warning_after_concept") or {}
    return {
        "drift_onset_part": onsets["concept"],
        "first_warning_part": first_warning.get("part"),
        "first_alarm_part": first_alarm.get("part"),
        "samples_onset_to_first_warning": first_warning.get("parts_after_onset"),
        "samples_onset_to_first_alarm": first_alarm.get("parts_after_onset"),
        "retrain_started_part": story.retrain_started_part,
        "retrain_result": story.retrain_status,
        "new_version": story.retrain_version,
        "new_version_active_part": story.new_version_active_part,
        "wall_s_retrain_start_to_active": round(story.active_wall - story.retrain_wall, 1)
        if story.active_wall and story.retrain_wall else None,
        # includes waiting for enough labelled parts of the new behaviour to train on
        "wall_s_alarm_to_new_version_active": round(story.active_wall - story.alarm_wall, 1)
        if story.active_wall and story.alarm_wall else None,
        "accuracy_before_drift": before,
        "accuracy_at_worst": round(min(after_concept), 4) if after_concept else None,
        "accuracy_after_recovery": after,
        "accuracy_recovered_fraction": round(after / before, 3) if after and before else None,
    }


def write_report(out: Path, story: Story, board: Any, onsets: dict[str, int], figures: dict[str, Any],
                 summary: dict[str, Any]) -> None:
    _plot(out / "accuracy.png", story, board, onsets, figures)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(json.dumps(v))}</td></tr>"
                   for k, v in figures.items())
    history = "".join(f"<li>{html.escape(h)}</li>" for h in summary.get("version_history", []))
    (out / "report.html").write_text(
        "<!doctype html><html><head><meta charset='utf-8'><title>factory-edge demo</title><style>"
        "body{font-family:sans-serif;max-width:70em;margin:2em auto}td{border:1px solid #ccc;"
        "padding:.2em .6em}table{border-collapse:collapse}</style></head><body>"
        "<h1>Simulated line: drift, detection, retraining, recovery</h1>"
        f"<p>{summary.get('parts_made')} parts; new resin from part {onsets['resin']}, changed "
        f"relation between process and quality from part {onsets['concept']}.</p>"
        "<img src='accuracy.png' alt='accuracy and drift score over the run' width='100%'>"
        f"<h2>What happened</h2><table>{rows}</table>"
        f"<h2>Version history (from the hub)</h2><ul>{history}</ul>"
        "<p>Model cards: cards/. Full figures: summary.json.</p></body></html>\n")


def _plot(path: Path, story: Story, board: Any, onsets: dict[str, int], figures: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.8), dpi=100)
    curve = accuracy_curve(board.by_part)
    if curve:
        ax.plot([p for p, _ in curve], [a for _, a in curve], color="#0b63b6",
                label=f"accuracy on labelled parts ({WINDOW}-part window)")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("part")
    ax.set_ylabel("accuracy")
    if story.drift_points:
        ax2 = ax.twinx()
        ax2.plot([p for p, _ in story.drift_points], [d for _, d in story.drift_points], color="#d08300",
                 alpha=0.7, label="largest PSI (drift score)")
        ax2.set_ylabel("drift score (PSI)")
        ax2.legend(loc="lower right")
    marks = [(onsets["resin"], "new resin", "#6b7785"), (onsets["concept"], "relation changes", "#6b7785"),
             (figures.get("first_warning_part"), "first warning", "#b26a00"),
             (figures.get("first_alarm_part"), "first alarm", "#c0262d"),
             (figures.get("retrain_started_part"), "retrain", "#5b2a86"),
             (figures.get("new_version_active_part"), f"{figures.get('new_version')} active", "#1b7d3a")]
    for part, label, color in marks:
        if part is not None:
            ax.axvline(part, color=color, linestyle="--", linewidth=1, label=f"{label} (part {part})")
    for part, _ in story.versions_seen[1:]:
        ax.axvline(part, color="#999999", linestyle=":", linewidth=1)
    ax.legend(loc="lower left", fontsize=8)
    ax.set_title("accuracy and drift over the run (dotted: other model switches)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
