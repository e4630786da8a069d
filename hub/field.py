"""What the gateways report about a model in service: the one place that reads the status
reports for retrain triggers and model cards, per (gateway, model): each gateway's entry of the
model (hub.reports) says which version is active, its rolling figures per class and its
labelled outcomes since that version was activated; another model's entry never counts.

The hub keeps the last outcomes each gateway reported for each version in the model's policy
state (``field``), so a card still shows what a version did after it was replaced."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_VERSIONS_KEPT = 50  # per model, in the policy state


@dataclass(frozen=True)
class FieldReport:
    gateway: str
    version: str | None
    since: float | None
    monitor: dict[str, Any]
    alarms: list[dict[str, Any]]
    health: str | None

    @property
    def balanced_accuracy(self) -> float | None:
        v = self.monitor.get("rolling_balanced_accuracy")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def per_class(self) -> dict[str, dict[str, Any]]:
        v = self.monitor.get("rolling_per_class")
        return v if isinstance(v, dict) else {}

    @property
    def cost_per_part(self) -> float | None:
        v = self.monitor.get("rolling_cost_per_part")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def since_activation(self) -> dict[str, Any] | None:
        """Labelled outcomes of the active version only, counted since it was activated."""
        v = self.monitor.get("since_activation")
        if not isinstance(v, dict) or not isinstance(v.get("confusion"), list):
            return None
        return v

    @property
    def drift_alarm(self) -> bool:
        return any(isinstance(a, dict) and a.get("level") == "alarm" for a in self.alarms)


def model_reports(reports: dict[str, dict[str, Any]], model: str) -> list[FieldReport]:
    """Of the gateways' entries of ``model`` (hub.reports: {gateway: entry}), those whose
    active version is of ``model``."""
    out = []
    for gateway, report in sorted(reports.items()):
        active = (report or {}).get("active") or {}
        if active.get("name") != model:
            continue
        monitor = ((report.get("metrics") or {}).get("monitor") or {})
        out.append(FieldReport(gateway, active.get("version"), active.get("since"),
                               monitor if isinstance(monitor, dict) else {},
                               [a for a in report.get("alarms") or [] if isinstance(a, dict)],
                               report.get("health")))
    return out


def remember(state: dict[str, Any], field: list[FieldReport]) -> None:
    """Keep each gateway's latest since-activation outcomes per version in ``state``."""
    kept: dict[str, dict[str, Any]] = state.setdefault("field", {})
    for r in field:
        since = r.since_activation
        if since is None or not since.get("version"):
            continue
        kept.setdefault(str(since["version"]), {})[r.gateway] = {**since, "since": r.since}
    for old in list(kept)[:-MAX_VERSIONS_KEPT]:
        del kept[old]


def outcomes_of(state: dict[str, Any], live: list[FieldReport], version: str) -> list[dict[str, Any]]:
    """Per gateway, the labelled outcomes of ``version`` since it was activated there: live
    reports first, else what the hub kept from earlier ones."""
    rows: dict[str, dict[str, Any]] = {}
    for gateway, since in ((state.get("field") or {}).get(version) or {}).items():
        rows[gateway] = {**since, "gateway": gateway, "live": False}
    for r in live:
        s = r.since_activation
        if s is not None and s.get("version") == version:
            rows[r.gateway] = {**s, "since": r.since, "gateway": r.gateway, "live": True,
                               "health": r.health}
    return [rows[g] for g in sorted(rows)]
