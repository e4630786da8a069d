"""edge-hub worker | retention ...: the hub's background work and what it keeps."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any


def worker(ctx: Any, args: argparse.Namespace) -> int:
    from hub.fleet.jobs import JobContext
    from hub.fleet.queue import HubQueue, check_queues, run_worker
    from hub.limits import HubLimits

    queues = check_queues(args.queues)  # an unknown name fails before anything connects
    queue = HubQueue(JobContext(ctx.engine, args.data, HubLimits()))
    if args.metrics_port is not None:
        from prometheus_client import start_http_server

        from hub.fleet.metrics import metrics_registry

        start_http_server(args.metrics_port, args.metrics_host, registry=metrics_registry(ctx.engine))
    try:
        run_worker(queue, queues, args.concurrency)
    finally:
        queue.close()
    return 0


def retention_set(ctx: Any, args: argparse.Namespace) -> int:
    from hub.fleet import retention

    settings = retention.parse_settings(args.settings)
    print(json.dumps(retention.set_days(ctx.engine, settings, ctx.actor), indent=1))
    return 0


def retention_show(ctx: Any, args: argparse.Namespace) -> int:
    from hub.fleet import retention

    for kind, c in retention.covered(ctx.engine).items():
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(c["since"]))
        print(f"{kind}: {c['days']} days (kept since {since})")
    return 0


def retention_run(ctx: Any, args: argparse.Namespace) -> int:
    from hub.fleet import retention

    retention.ensure_partitions(ctx.engine)
    print(json.dumps(retention.sweep(ctx.engine), indent=1))
    return 0


HANDLERS = {"worker": worker, "retention set": retention_set, "retention show": retention_show,
            "retention run": retention_run}
