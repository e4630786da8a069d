"""Model versions as units of deployment: the bundle format (manifest, hashes, signature),
the bundle builder, the on-disk store of verified versions, the lifecycle of a model on the
gateway (activate, watch, shadow, roll back) and the side-by-side comparison of two versions.

May import: agent.types, agent.errors, agent.config, agent.inference, agent.monitor
(calibration and profiles for the builder), agent.ingest.csvio.
"""
