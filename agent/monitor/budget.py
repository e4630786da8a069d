"""The false-alarm budget of a model, and the rule that splits it across its detectors.

A plant counts false alarms per model, not per stream: ``alarms_per_week`` (default 1) and
``warnings_per_week`` (default 5) are for the whole model, all its detectors and streams
together. The split (stated in the manifest, shown by ``edge-agent status``):

* performance detectors get half: CBPE a quarter, the label error CUSUM a quarter (they are
  what tells the plant the model is wrong, so they get the larger share);
* the prediction (the model's score) a tenth: its PSI and its CUSUM a twentieth each;
* the inputs 40%: half of it to the pooled mean CUSUM (agent.monitor.pooled; it
  needs two or more numeric inputs), the rest in equal parts per detector and stream: PSI, mean
  CUSUM, residual mean CUSUM and scale CUSUM of every numeric input, the tie CUSUM of every
  numeric input the others predict (agent.monitor.tie), the category window of
  every categorical input, the multivariate (PCA) CUSUM (two or more numeric inputs). Without
  the pooled CUSUM, all of it in equal parts;
* the innovation GLR (agent.monitor.innovation; two or more numeric inputs and enough rows to
  fit its VAR) 15 parts beside those 100 (13% of the model's budget): it sees a shift of tags
  coupled through their dynamics that the per-tag streams miss, and the others' thresholds rise
  by only log(1.15) for it.

A detector a model does not have (a regression has no CBPE and no label CUSUM) gives its share
to the others in proportion. Each detector's threshold is then set for its share.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

SECONDS_PER_WEEK = 7 * 24 * 3600
UNIT = "false alarms per model per week, all detectors and streams together"
SPLIT_RULE = ("performance 50% (CBPE 25%, label error CUSUM 25%), prediction 10% (PSI 5%, CUSUM "
              "5%), inputs 40% (half of it to the pooled mean CUSUM, with two or more numeric "
              "inputs; the rest in equal parts per detector and stream: PSI, mean CUSUM, residual "
              "mean CUSUM, scale CUSUM per numeric input, tie CUSUM per numeric input with a "
              "tie to the others; category window per categorical input; "
              "PCA CUSUM); the innovation GLR 15 parts beside these 100, with two or more numeric "
              "inputs and rows enough for its VAR; "
              "shares of detectors the model lacks go to the others in proportion")
# the pooled mean CUSUM's part of the inputs' share: it is the one detector that sees a shift of
# a few tags together (and a single tag's too, later than that tag's own CUSUM), so a shift of
# several tags, the common case, is found by it; its threshold falls with the log of its share
# (half of the inputs' share instead of 1 / (4 m + 2) of it: mean-shift medians 0-20% fewer rows
# on the development sets, 2026-12-01), the other input detectors' rise by log 2 (tool wear 0-13%
# more rows)
POOLED_PART = 0.5
WEIGHTS = {"cbpe": 25.0, "error_cusum": 25.0, "prediction_psi": 5.0, "prediction_cusum": 5.0,
           "inputs": 40.0, "innovation_glr": 15.0}


@dataclass(frozen=True)
class Budget:
    sample_rate_hz: float = 1.0
    alarms_per_week: float = 1.0  # false alarms per model per week
    warnings_per_week: float = 5.0  # warnings per model per week
    window: int = 500
    every: int = 32
    cusum_k: float = 0.25  # mean CUSUM tuned for shifts of half a (long-run) standard deviation
    # scale CUSUM designed for a variance 1.3x the reference: a tag that loses its tie to its
    # group grows its prediction error's variance by only 1.25-1.44 (measured), which a 1.5x
    # design (k = 1.22) barely or never saw; x2-x3 tool wear is seen as fast with 1.3x
    scale_ratio: float = 1.3
    unit: str = "per_model"  # bundles built before per-model budgets record none: "per_stream"

    def __post_init__(self) -> None:
        for name in ("sample_rate_hz", "alarms_per_week", "warnings_per_week"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"{name} must be greater than 0, got {value}")
        if self.window < 50 or self.every < 1 or self.every > self.window:
            raise ValueError(f"window must be >= 50 and every in 1..window, got {self.window}/{self.every}")
        if not self.scale_ratio > 1:
            raise ValueError(f"scale_ratio must be greater than 1, got {self.scale_ratio}")

    @property
    def samples_per_week(self) -> float:
        return self.sample_rate_hz * SECONDS_PER_WEEK

    def rates(self, share: float) -> tuple[float, float]:
        """(warnings, alarms) per week for a detector stream with this share of the budget."""
        return self.warnings_per_week * share, self.alarms_per_week * share

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_manifest(cls, monitoring: dict[str, Any] | None) -> Budget:
        """The budget a bundle was built with. A bundle of the per-stream era records no unit:
        its numbers meant 'per stream'; they are kept as the plant's numbers, now per model."""
        raw = dict((monitoring or {}).get("budget") or {})
        known = {k: v for k, v in raw.items() if k in cls.__dataclass_fields__ and k != "unit"}
        return cls(**known)


def describe(monitoring: dict[str, Any]) -> str:
    """One line for `edge-agent status`: what the budget of this bundle is and how it is split."""
    raw = monitoring.get("budget") or {}
    if raw.get("unit") != "per_model":
        return (f"{raw.get('alarms_per_week', '?')} false alarm(s)/week PER STREAM (bundle built "
                "before per-model budgets; rebuild it for a per-model budget)")
    split = monitoring.get("budget_split") or {}
    shares = split.get("shares") or {}
    pooled = float((split.get("alarms_per_week_per_stream") or {}).get("pooled_cusum") or 0.0)
    has_pooled = bool(pooled and (split.get("streams") or {}).get("pooled_cusum"))

    def part(group: str, share: float) -> str:
        text = f"{group} {round(100 * share, 1):g}%"
        if group == "inputs" and has_pooled:
            # the one input detector with more than an equal part: how much of the inputs' it has
            text += f" (pooled mean CUSUM {round(100 * pooled / raw['alarms_per_week'], 1):g}%)"
        return text

    parts = ", ".join(part(k, v) for k, v in shares.items())
    return (f"{raw['alarms_per_week']:g} false alarm(s) and {raw['warnings_per_week']:g} warning(s)"
            f" per week per model at {raw['sample_rate_hz']:g} Hz; split: {parts}")


def split(numeric: int, categorical: int, multivariate: bool, cbpe: bool, labels: bool,
          ties: int = 0, innovation: bool = False) -> dict[str, Any]:
    """Share of the model's budget for one stream of each detector, and the record of the split
    (``ties``: the numeric inputs with a tie CUSUM; ``innovation``: with the innovation GLR).

    Returns {"per_stream": {detector: share}, "shares": {group: share}, "input_streams": n}.
    """
    weights = {"prediction_psi": WEIGHTS["prediction_psi"],
               "prediction_cusum": WEIGHTS["prediction_cusum"]}
    input_streams = 4 * numeric + ties + categorical + (2 if multivariate else 0)
    if input_streams:
        weights["inputs"] = WEIGHTS["inputs"]
    if cbpe:
        weights["cbpe"] = WEIGHTS["cbpe"]
    if labels:
        weights["error_cusum"] = WEIGHTS["error_cusum"]
    if innovation:
        weights["innovation_glr"] = WEIGHTS["innovation_glr"]
    total = sum(weights.values())
    shares = {k: v / total for k, v in weights.items()}
    inputs = shares.get("inputs", 0.0)
    pooled = POOLED_PART * inputs if multivariate else 0.0
    per_input = (inputs - pooled) / max(1, input_streams - (1 if multivariate else 0))
    per_stream = {"psi": per_input, "cusum": per_input, "scale_cusum": per_input,
                  "resid_cusum": per_input, "tie_cusum": per_input, "js": per_input,
                  "pca_cusum": per_input, "pooled_cusum": pooled,
                  "prediction_psi": shares["prediction_psi"],
                  "prediction_cusum": shares["prediction_cusum"],
                  "cbpe": shares.get("cbpe", 0.0), "error_cusum": shares.get("error_cusum", 0.0),
                  "innovation_glr": shares.get("innovation_glr", 0.0)}
    return {"per_stream": per_stream, "shares": {k: round(v, 6) for k, v in shares.items()},
            "input_streams": input_streams}
