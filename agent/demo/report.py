"""The demo's report for a plant engineer: report.html (plain-language tables) and accuracy.png
(NOK recall and balanced accuracy next to accuracy over the parts; the drift score against its
alarm threshold; every change, alarm, retrain and version switch in its own colour, named in a
legend outside the plot, so no label covers another or a curve)."""

from __future__ import annotations

import html
import textwrap
from pathlib import Path
from typing import Any

from agent.demo.scoreboard import WINDOW, Scoreboard, curves
from agent.demo.story import Story

COLOURS = {"resin": "#6b7785", "concept": "#1d2a33", "alarm": "#c0262d", "retrain": "#5b2a86",
           "switch": "#1b7d3a"}
ROWS = [("nok_recall", "NOK parts caught (NOK recall)"),
        ("nok_precision", "NOK calls that were NOK (NOK precision)"),
        ("balanced_accuracy", "balanced accuracy (mean of NOK and OK recall)"),
        ("accuracy", "parts called right (accuracy)"),
        ("cost_per_part", "expected cost per part (missed NOK 10, false NOK 1)"),
        ("labelled_parts", "labelled parts counted")]


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


def marks(story: Story, onsets: dict[str, int], loop: dict[str, Any],
          timeline: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    """(part, kind, label) of everything worth a vertical line, in part order."""
    out: list[tuple[int, str, str]] = [(onsets["resin"], "resin", "new resin"),
                                       (onsets["concept"], "concept", "relation changes")]
    last_alarm = -10**9
    for t in timeline:  # alarms closer than 10 parts to the previous one are the same moment
        if t["level"] == "alarm" and t["part"] >= 0 and t["part"] - last_alarm >= 10:
            out.append((t["part"], "alarm", f"alarm {t['kind']}/{t['detector']}"))
            last_alarm = t["part"]
    if loop.get("retrain_started_part") is not None:
        out.append((loop["retrain_started_part"], "retrain", "retrain starts"))
    for part, version in story.versions_seen:
        out.append((part, "switch", f"{version} active"))
    return sorted(out)


def write_report(out: Path, story: Story, board: Scoreboard, onsets: dict[str, int], loop: dict[str, Any],
                 summary: dict[str, Any]) -> None:
    timeline = summary.get("alarm_timeline") or []
    events = marks(story, onsets, loop, timeline)
    plot(out / "accuracy.png", story, board, events, 1.0)
    (out / "report.html").write_text(page(loop, summary, onsets, events))


def _wrap(text: str) -> str:
    return textwrap.fill(text, 40)


def plot(path: Path, story: Story, board: Scoreboard, events: list[tuple[int, str, str]],
         threshold: float) -> dict[str, Any]:
    """Draw accuracy.png; returns the pixel boxes of the legend and the two panels (what the
    tests check for overlaps)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(13, 7.8), dpi=100, sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1.4]})
    pts = curves(board.by_part)
    x = [p["part"] for p in pts]
    lines = (("nok_recall", "NOK recall (share of NOK parts caught)", "#c0262d", "-"),
             ("balanced_accuracy", "balanced accuracy (mean of NOK and OK recall)", "#1b7d3a", "-"),
             ("accuracy", "accuracy (share of parts called right)", "#0b63b6", ":"))
    for key, label, colour, style in lines:
        top.plot(x, [p[key] if p[key] is not None else float("nan") for p in pts], color=colour,
                 linestyle=style, linewidth=2 if style == "-" else 1.6, label=_wrap(label))
    top.set_ylim(0, 1.05)
    top.set_ylabel(f"share of labelled parts\n(last {WINDOW} parts)")
    top.grid(axis="y", color="#e6e9ed")
    top.set_title("How well the gateway's model caught bad parts, and what happened on the line")
    ceiling = threshold * 3
    if story.drift_points:
        bottom.plot([p for p, _ in story.drift_points], [min(d, ceiling) for _, d in story.drift_points],
                    color="#d08300", linewidth=1.4,
                    label=_wrap("drift score: largest detector score / its alarm level "
                                f"(cut at {ceiling:g})"))
    bottom.axhline(threshold, color="#c0262d", linestyle="--", linewidth=1.2, label="alarm threshold")
    bottom.set_ylim(0, ceiling * 1.15)
    bottom.set_ylabel("drift score\n(1 = alarm level)")
    bottom.set_xlabel("part number")
    bottom.grid(axis="y", color="#e6e9ed")
    alarms = [part for part, kind, _ in events if kind == "alarm"]
    if alarms:
        bottom.plot(alarms, [ceiling * 1.07] * len(alarms), linestyle="none", marker="v",
                    color=COLOURS["alarm"], markersize=6,
                    label=_wrap(f"alarm raised ({len(alarms)} times, first at part {alarms[0]})"))
    names = {"resin": "new resin arrives", "concept": "relation between process and quality changes",
             "retrain": "the hub starts a retrain"}
    for kind in ("resin", "concept", "retrain"):
        parts = [part for part, k, _ in events if k == kind]
        for i, part in enumerate(parts):
            for ax in (top, bottom):
                ax.axvline(part, color=COLOURS[kind], linestyle="--" if kind != "retrain" else "-.",
                           linewidth=1.4, label=_wrap(f"{names[kind]} (part {part})")
                           if ax is top and i == 0 else None)
    switches = [(part, label) for part, k, label in events if k == "switch"]
    switch_label = _wrap("model version switch: " + ", ".join(f"{lab} at part {p}" for p, lab in switches))
    for i, (part, _) in enumerate(switches):
        for ax in (top, bottom):
            ax.axvline(part, color=COLOURS["switch"], linestyle=":", linewidth=1.6,
                       label=switch_label if ax is top and i == 0 else None)
    handles, labels = top.get_legend_handles_labels()
    h2, l2 = bottom.get_legend_handles_labels()
    legend = fig.legend(handles + h2, labels + l2, loc="center right", fontsize=8.5, frameon=False,
                        labelspacing=0.9)
    fig.tight_layout(rect=(0, 0, 0.73, 1))
    fig.savefig(path)
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = {"legend": legend.get_window_extent(renderer).bounds,
             "panels": [ax.get_tightbbox(renderer).bounds for ax in (top, bottom)],
             "figure": (0.0, 0.0, float(fig.bbox.width), float(fig.bbox.height)),
             "labels": labels + l2}
    plt.close(fig)
    return boxes


def page(loop: dict[str, Any], summary: dict[str, Any], onsets: dict[str, int],
         events: list[tuple[int, str, str]]) -> str:
    esc = html.escape
    worst_end = loop["at_worst"].get("ending_at_part")
    recovered_from = (loop.get("new_version_active_part") or 0) + 20
    cols = [("before_drift", f"before the drift (parts 0-{onsets['resin'] - 1})"),
            ("at_worst", f"at worst ({WINDOW} parts ending at part {worst_end})"),
            ("after_recovery", f"after recovery (from part {recovered_from})")]
    figures = "".join(
        f"<tr><th>{esc(name)}</th>"
        + "".join(f"<td>{_fmt((loop.get(c) or {}).get(key))}</td>" for c, _ in cols) + "</tr>"
        for key, name in ROWS)
    verdict = loop["recovery"]
    said = ("The model recovered: " + verdict["rule"] + "." if verdict["recovered"]
            else "The model did not recover: " + "; ".join(verdict["why_not"]) + ".")
    whats = "".join(f"<tr><td>{part}</td><td>{esc(label)}</td></tr>" for part, _, label in events)
    decisions = "".join(
        f"<tr><td>{_fmt(r.get('part'))}</td><td>{esc(r['status'])}</td><td>{esc(str(r.get('version') or ''))}"
        f"</td><td>{esc(str(r.get('reason') or ''))}</td><td>{esc(str(r.get('decision') or ''))}</td></tr>"
        for r in loop.get("retrain_decisions") or [])
    inc = loop.get("incidents") or {}
    incidents = "".join(f"<tr><th>{esc(k.replace('_', ' '))}</th><td>{v['incidents']}</td>"
                        f"<td>{v['notifications']}</td></tr>" for k, v in inc.items() if isinstance(v, dict))
    history = "".join(f"<li>{esc(h)}</li>" for h in summary.get("version_history", []))
    others = "".join(_regressor_section(name, m) for name, m in (summary.get("models") or {}).items()
                     if isinstance(m, dict) and "before_drift" in m)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>factory-edge demo report</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:72em;margin:2em auto;color:#1d2a33}"
        "td,th{border:1px solid #d5dbe1;padding:.25em .6em;text-align:left;vertical-align:top}"
        "table{border-collapse:collapse;margin:.5em 0 1.2em}th{background:#eef1f4;font-weight:600}"
        ".verdict{font-weight:600}</style></head><body>"
        "<h1>Simulated moulding line: drift, detection, retraining, recovery</h1>"
        f"<p>{summary.get('parts_made')} parts. New resin from part {onsets['resin']}; from part "
        f"{onsets['concept']} the relation between process and quality changed: the share of NOK parts "
        f"stayed at {_fmt(loop.get('nok_share_after_relation_change'))} (before the drift "
        f"{_fmt(loop.get('nok_share_before_drift'))}), but other parts were NOK.</p>"
        f"<p class='verdict'>{esc(said)}</p>"
        "<img src='accuracy.png' alt='NOK recall, balanced accuracy and accuracy over the parts, and the "
        "drift score against its alarm threshold' width='100%'>"
        "<h2>How well the model did</h2><table><tr><th></th>"
        + "".join(f"<th>{esc(name)}</th>" for _, name in cols) + f"</tr>{figures}</table>"
        f"<h2>What happened, by part</h2><table><tr><th>part</th><th>event</th></tr>{whats}</table>"
        "<h2>What the hub decided about retraining, and why</h2><table><tr><th>part</th><th>decision</th>"
        f"<th>version</th><th>why</th><th>verdict</th></tr>{decisions}</table>"
        f"<h2>Alarms the operators saw</h2><table><tr><th>phase</th><th>incidents</th><th>notifications</th>"
        f"</tr>{incidents}</table>"
        f"{others}<h2>Version history (from the hub)</h2><ul>{history}</ul>"
        "<p>Model cards: cards/. All figures: summary.json.</p></body></html>\n")


def _regressor_section(name: str, m: dict[str, Any]) -> str:
    """The other model on the gateway: its error before and after each change, its incidents."""
    esc = html.escape
    cols = [("holdout", "on its holdout"), ("before_drift", "before the drift"),
            ("after_resin", "after the new resin"), ("after_relation_change", "after the relation change")]
    rows = "".join(f"<tr><th>{esc(label)}</th>" + "".join(
        f"<td>{_fmt((m.get(c) or {}).get(key))}</td>" for c, _ in cols) + "</tr>"
        for key, label in (("mae_s", "mean absolute error (seconds)"),
                           ("rmse_s", "root mean square error (seconds)"), ("parts", "parts")))
    flat = ("Its error stayed flat" if m.get("mae_flat") else "Its error did NOT stay flat") + (
        f" ({m.get('flat_rule')}); incidents of this model: {m.get('incidents')}.")
    return (f"<h2>The other model on the gateway: {esc(name)} ({esc(str(m.get('model')))})</h2>"
            "<p>The same agent predicts each part's cycle time from the mould temperature, the screw "
            "speed and the programmed cycle; neither change touches these or the cycle time.</p>"
            "<table><tr><th></th>" + "".join(f"<th>{esc(n)}</th>" for _, n in cols) + f"</tr>{rows}"
            f"</table><p class='verdict'>{esc(flat)}</p>")
