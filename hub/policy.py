"""A model's retrain and rollout policy: the settings, their defaults and their checks.

Stored per model (``ModelPolicy``); ``edge-hub policy set MODEL K=V ...`` changes it. Bad values
are refused whole with one message per setting that names it and the fix."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.models.scoring import CostError, CostMatrix, check_costs, check_fraction
from hub.registry import HubError
from hub.storage import ModelPolicy, record

DEFAULT_POLICY: dict[str, Any] = {
    # triggers
    "balanced_accuracy_below": 0.8, "sustain_s": 300.0, "drift_sustain_s": 600.0,
    "min_new_labels": 100, "min_interval_s": 3600.0,
    # the dataset
    "max_rows": 2000, "min_rows": 100, "holdout_share": 0.25, "lookback_s": 0.0, "min_per_class": 20,
    # the trainer
    "trainer": "auto", "seed": 0, "timeout_s": 900.0,
    # what a wrong call costs, and champion/challenger
    "cost_missed_nok": 10.0, "cost_false_nok": 1.0, "margin": 0.02, "min_class_recall": 0.5,
    "significance": 0.05,
    # the rollout
    "strategy": "canary", "canary_size": 1, "watch_s": 600.0, "min_labels": 50,
    "require_approval": False,
}
# settings of older hubs: refused with what replaced them; dropped from stored policies
REPLACED = {"accuracy_below": "balanced_accuracy_below (accuracy alone rewards a model that always "
                              "says OK)"}
TRAINERS = ("auto", "gbt", "rf", "logistic")
STRATEGIES = ("immediate", "canary", "shadow")


def stored_policy(s: Session, model: str) -> dict[str, Any]:
    """The model's policy (defaults for what it does not set) in an open session."""
    row = s.get(ModelPolicy, model)
    return {**DEFAULT_POLICY, **{k: v for k, v in (row.policy if row else {}).items() if k in DEFAULT_POLICY}}


def get_policy(engine: Engine, model: str) -> dict[str, Any]:
    with Session(engine) as s:
        row = s.get(ModelPolicy, model)
        return {**stored_policy(s, model), "state": dict(row.state or {}) if row else {}}


def policy_costs(policy: dict[str, Any], classes: list[str], positive: str | None) -> CostMatrix:
    return CostMatrix(tuple(classes), positive, float(policy["cost_missed_nok"]),
                      float(policy["cost_false_nok"]))


def check_policy(changes: dict[str, Any], current: dict[str, Any] | None = None) -> None:
    """HubError listing every bad setting, each with its fix."""
    problems = []
    for key in sorted(set(changes) - set(DEFAULT_POLICY)):
        problems.append(f"{key}: replaced by {REPLACED[key]}" if key in REPLACED else
                        f"{key}: unknown setting; known: {', '.join(DEFAULT_POLICY)}")
    typed = {}  # the settings of the right type, for the range checks below
    for key, value in changes.items():
        default = DEFAULT_POLICY.get(key)
        if key not in DEFAULT_POLICY or key == "trainer" or isinstance(default, str):
            continue
        if isinstance(default, bool):
            if not isinstance(value, bool):
                problems.append(f"{key}={value!r}: use true or false")
        elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            why = "a cost cannot be negative; " if key.startswith("cost_") and isinstance(
                value, (int, float)) and not isinstance(value, bool) else ""
            problems.append(f"{key}={value!r}: {why}use a number >= 0")
        else:
            typed[key] = float(value)
    if "min_per_class" in typed and (typed["min_per_class"] < 1 or not typed["min_per_class"].is_integer()):
        problems.append(f"min_per_class={changes['min_per_class']!r}: use a whole number >= 1 (labelled "
                        "examples of every class needed in training and in the holdout)")
    for key in ("min_class_recall", "balanced_accuracy_below"):
        if key in typed:
            try:
                check_fraction(key, typed[key])
            except CostError as exc:
                problems.append(str(exc))
    if "holdout_share" in typed and not 0 < typed["holdout_share"] < 1:
        problems.append(f"holdout_share={changes['holdout_share']!r}: use a share between 0 and 1 "
                        "(the newest part of the data, kept for champion/challenger)")
    if "significance" in typed and not 0 < typed["significance"] <= 1:
        problems.append(f"significance={changes['significance']!r}: use a level in (0, 1], e.g. 0.05")
    if {"cost_missed_nok", "cost_false_nok"} & set(typed):
        merged = {**DEFAULT_POLICY, **(current or {}), **typed}
        try:
            check_costs(merged["cost_missed_nok"], merged["cost_false_nok"])
        except CostError as exc:
            problems.append(str(exc))
    if changes.get("strategy", "canary") not in STRATEGIES:
        problems.append(f"strategy={changes['strategy']!r}: use immediate, canary or shadow")
    trainer = changes.get("trainer", "auto")
    command = trainer.get("command") if isinstance(trainer, dict) else None
    if not (trainer in TRAINERS or (isinstance(command, list) and command)):
        problems.append(f"trainer={trainer!r}: use {', '.join(TRAINERS)} or "
                        "{\"command\": [\"/path/to/train\", ...]}")
    if problems:
        raise HubError("; ".join(problems))


def set_policy(engine: Engine, model: str, changes: dict[str, Any]) -> dict[str, Any]:
    with Session(engine) as s, s.begin():
        row = s.get(ModelPolicy, model)
        current = {k: v for k, v in (row.policy if row else {}).items() if k in DEFAULT_POLICY}
        check_policy(changes, current)
        if row is None:
            row = ModelPolicy(model=model, policy=dict(DEFAULT_POLICY), state={})
            s.add(row)
        row.policy = {**DEFAULT_POLICY, **current, **changes}
        record(s, model, "-", "policy", detail=json.dumps(changes, sort_keys=True))
        return dict(row.policy)
