"""The hub's HTTP API: one router per resource, auth and the hub context as dependencies
(hub.api.auth, hub.api.deps), every body read within the limits (hub.api.bodies) and validated
by the models in hub.api.schemas. hub.app assembles them.

May import: hub.storage, hub.registry, hub.rollouts, hub.overlays, hub.audit, hub.modelcard,
hub.context, hub.limits, hub.ids, hub.ratelimit, agent.errors. Never hub.cli.
"""

from hub.api import (
    bundles,
    cards,
    config,
    dashboard,
    deployments,
    fleet,
    gateways,
    history,
    models,
    status,
    telemetry,
)

ROUTERS = [gateways.router, status.router, telemetry.router, bundles.router, models.router,
           cards.router, deployments.router, config.router, history.router, dashboard.router,
           fleet.router]
