"""OPC UA source (asyncua), in small parts: the source and its session loop (source), a
configured client shared with the commissioning commands (client), refusals explained
(reasons), asyncua's own error logs tamed (logfilter), certificates (certs), browsing (browse)."""

from agent.ingest.sources.opcua.source import OpcUaSource

__all__ = ["OpcUaSource"]
