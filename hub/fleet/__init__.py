"""A hub of several machines on one PostgreSQL: what makes API workers stateless and background
work safe to run anywhere.

  hub.fleet.queue      the procrastinate app: tasks, periodic schedule, `edge-hub worker`
  hub.fleet.jobs       the background jobs as plain functions (the SQLite loop runs them too)
  hub.fleet.metrics    the hub's own Prometheus /metrics (multiprocess-safe)
  hub.fleet.notify     LISTEN/NOTIFY: caches of every API worker follow changes within a second
  hub.fleet.retention  days kept per kind of data; telemetry partitions made ahead and dropped
  hub.fleet.artifacts  bundle archives and dataset files in PostgreSQL (chunks), or DATA/ on SQLite
  hub.fleet.pg         the schema a hub lives in, advisory locks and channels named after it

Everything database-wide (notice channels, advisory lock keys, procrastinate's queues) is named
after the hub's schema, so hubs (and test runs) sharing one PostgreSQL never see each other.

May import: hub.storage, hub.registry, hub.rollouts, hub.retrain, hub.audit, hub.cache,
hub.limits, agent.errors. Never hub.api, hub.app or hub.cli (they import this).
"""
