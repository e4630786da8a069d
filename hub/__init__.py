"""The central hub: model registry, rollouts, telemetry, retraining, audit trail, dashboard.

Layers, each importing only those below it (docs/hub.md has the map):
  hub.cli          the edge-hub command line (argparse; one handler per command)
  hub.app          create_app: assembles hub.api's routers, the context and hub.background
  hub.api          routers per resource; auth and the hub context as dependencies
  hub.background   in an API process: the SQLite job loop, or the queue worker and LISTEN (PostgreSQL)
  hub.fleet        several hub machines on one PostgreSQL: job queue and jobs, notices, shared
                   artifacts, retention, the hub's /metrics (hub.fleet.pg, .artifacts: any layer)
  hub.context, hub.cache
  hub.retrain, hub.reproduce, hub.evaluation, hub.datasets, hub.trainer, hub.modelcard
  hub.registry (+ hub.intake), hub.rollouts, hub.overlays, hub.audit
  hub.reports      status reports per (gateway, model)
  hub.storage      tables, Alembic migrations, queries (gateways, tokens, telemetry + ingest)
  hub.limits, hub.ids, hub.ratelimit, hub.faults
The hub may import agent.* (bundle format, codec, audit hash, runtimes, config models); the
agent never imports the hub outside agent.demo.
"""
