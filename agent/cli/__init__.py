"""Command line: edge-agent run | check-config | config-schema | status | models | alarms |
bundle | replay | audit | opcua | sim | demo (declared in agent.cli.parser, one handler each).

Every user-facing failure ends as one clear message and an exit code, never a traceback:
2 for bad input (config, CSV, bundle, conflicting options), 1 for a failure at run time.
May import any agent package; nothing but the entry point imports it.
"""

from __future__ import annotations

import sys

from agent.errors import AgentError, BundleError, ConfigError, CsvError

EXIT_BAD_INPUT = 2


def main(argv: list[str] | None = None) -> int:
    from agent.cli.parser import build_parser

    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        return EXIT_BAD_INPUT
    except (CsvError, BundleError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except AgentError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the environment, not the input: permissions, a full disk
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
