"""edge-agent bundle build: a bundle from a model trained anywhere, with thresholds from the
model's false-alarm budget calibrated on rows it never fitted."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from agent.errors import BundleError


def budget_from_args(args: argparse.Namespace) -> Any:
    from agent.monitor.budget import Budget

    for flag, value, example in (("--false-alarms-per-week", args.false_alarms_per_week, "1"),
                                 ("--warnings-per-week", args.warnings_per_week, "5"),
                                 ("--sample-rate", args.sample_rate, "1 (samples per second)")):
        if not value > 0:  # also catches NaN
            raise BundleError(f"{flag}: {value:g} is not allowed; it must be greater than 0 "
                              f"(per model and week for the budgets), e.g. {flag} {example}")
    if args.window < 50:
        raise BundleError(f"--window: {args.window} samples is too short; use at least 50 (default 500)")
    return Budget(sample_rate_hz=args.sample_rate, alarms_per_week=args.false_alarms_per_week,
                  warnings_per_week=args.warnings_per_week, window=args.window,
                  every=min(32, args.window))


def build(args: argparse.Namespace) -> int:
    from agent.models.builder import build_bundle
    from agent.monitor.budget import describe

    notes: list[str] = []
    built = build_bundle(
        args.model, args.train_csv, args.label, args.name, args.model_version, args.out,
        inputs=args.inputs.split(",") if args.inputs else None, holdout_csv=args.holdout_csv,
        positive_class=args.positive_class, signing_key=args.sign_key,
        budget=budget_from_args(args),
        categorical=args.categorical.split(",") if args.categorical else None, notes=notes,
        cost_missed_nok=args.cost_missed_nok, cost_false_nok=args.cost_false_nok)
    monitoring = (built.manifest.model_extra or {}).get("monitoring") or {}
    const = monitoring.get("constant")
    if const:  # an input that never moved in the reference is watched differently: say so
        names = [built.manifest.inputs[i].name for i in const["columns"]]
        notes.append("one value in every reference row, so no drift statistics: "
                     + ", ".join(f"{n} ({v:g})" for n, v in zip(names, const["values"], strict=True))
                     + "; any other value on the line raises an alarm (the model never saw one)")
    for note in notes:  # on stderr: stdout stays one JSON document for scripts
        print(f"note: {note}", file=sys.stderr)
    print(f"budget: {describe(monitoring)}", file=sys.stderr)
    summary: dict[str, Any] = {"bundle": str(args.out), "sha256": built.sha256,
                               "signed": built.signed_by is not None or args.sign_key is not None,
                               "metrics": built.manifest.metrics.get("holdout"),
                               "calibration": monitoring.get("calibration"),
                               "budget": monitoring.get("budget")}
    print(json.dumps(summary))
    return 0
