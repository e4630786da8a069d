"""make bench: every benchmark in one run, JSON lines on stdout (BENCH_QUICK=1 for a short run).

    python -m bench                                  everything (the soak's short case)
    python -m bench soak --models 3 --minutes 30     the 30-minute soak of 3 models alone
    python -m bench pipeline                         pipeline vs bare onnxruntime, 1 and 3 models
"""

from __future__ import annotations

import logging
import sys

from bench import (
    drift,
    drift_cases,
    fleet,
    hub,
    opcua_ingest,
    outbox,
    pipeline,
    pipeline_models,
    soak,
    trainers,
)


def main(argv: list[str]) -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("asyncua", "amqtt"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    if argv[:1] == ["soak"]:
        soak.main(argv[1:])
        return
    if argv[:1] == ["pipeline"]:
        pipeline.main()
        pipeline_models.main()
        return
    if argv:
        print(f"python -m bench: unknown case {argv[0]!r}: run it with no argument, 'soak' or "
              "'pipeline'", file=sys.stderr)
        sys.exit(2)
    outbox.main()
    pipeline.main()  # pins this process to one core
    pipeline_models.main()
    drift.main()
    drift_cases.main()
    trainers.main()
    opcua_ingest.main()
    hub.main()
    fleet.main()
    soak.main([])  # last: it runs for minutes


if __name__ == "__main__":
    main(sys.argv[1:])
