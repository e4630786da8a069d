"""Everything a request handler or background job of one hub process needs: the database, the
data directory, trusted keys, limits and the caches. One per app (``app.state.hub``); handlers
get it through the ``HubDep`` dependency (or ``hub.api.deps.hub_of(request)`` on the poll path,
where each dependency FastAPI solves is a measurable share of the request), never through
globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import Engine

from hub.cache import DesiredCache, TokenCache
from hub.fleet.pg import exclusive
from hub.limits import HubLimits
from hub.registry import trusted_keys
from hub.rollouts import evaluate
from hub.storage import lookup


@dataclass
class HubContext:
    engine: Engine
    data_dir: Path
    keys: list[Path] = field(default_factory=list)
    limits: HubLimits = field(default_factory=HubLimits)

    def __post_init__(self) -> None:
        self.bundles = self.data_dir / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self.desired = DesiredCache(self.engine)
        self.tokens = TokenCache(lambda h: lookup(self.engine, h), self.limits.token_cache_s,
                                 self.limits.max_cached_tokens)

    def trusted_keys(self) -> list[Path]:
        return trusted_keys(self.data_dir, self.keys)

    def evaluate_now(self) -> list[str]:
        """Judge rollouts at once (tests do not wait for the background loop)."""
        with exclusive(self.engine, "rollouts"):  # as the rollouts job: one judge at a time, fleet-wide
            decisions = evaluate(self.engine)
        self.desired.changed()
        return decisions
