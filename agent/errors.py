"""One root exception for everything the agent raises on purpose.

Adapters translate library errors (asyncua, aiomqtt, sqlite3, onnxruntime) into these at the
boundary with ``raise ... from exc`` so callers handle one tree:

    AgentError
    ├── ConfigError          bad YAML / schema / missing file; carries one line per problem
    ├── BundleError          unreadable, unsigned, tampered or self-test-failing model bundle
    ├── RuntimeLoadError     the model file cannot be loaded by its runtime
    ├── InferenceError       the runtime failed on a batch
    ├── SourceError          a protocol source cannot connect or lost its connection
    ├── OutboxError          the local store cannot be opened or written
    └── CsvError             a CSV file given on the command line is malformed
"""

from __future__ import annotations


class AgentError(Exception):
    """Root of every error the agent raises deliberately."""


class ConfigError(AgentError):
    """Configuration is invalid. ``problems`` holds one ``place: message`` line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class BundleError(AgentError):
    """A model bundle failed to read, verify or self-test."""


class RuntimeLoadError(AgentError):
    """A model runtime could not load its model file."""


class InferenceError(AgentError):
    """The runtime failed to run a batch."""


class SourceError(AgentError):
    """A data source could not connect or lost its connection."""


class OutboxError(AgentError):
    """The store-and-forward database could not be opened or written."""


class CsvError(AgentError):
    """A CSV input file is malformed (row and column are named in the message)."""
