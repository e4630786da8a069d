"""make bench: every benchmark in one run, JSON lines on stdout (BENCH_QUICK=1 for a short run)."""

from __future__ import annotations

import logging

from bench import drift, drift_cases, fleet, hub, opcua_ingest, outbox, pipeline, soak, trainers


def main() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("asyncua", "amqtt"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    outbox.main()
    pipeline.main()
    drift.main()
    drift_cases.main()
    trainers.main()
    opcua_ingest.main()
    hub.main()
    fleet.main()
    soak.main()  # last: it runs for minutes


if __name__ == "__main__":
    main()
