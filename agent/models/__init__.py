"""Model versions as units of deployment: the bundle format (manifest, hashes, signature),
the bundle builder, the on-disk store of verified versions, the lifecycle of a model on the
gateway (activate, watch, shadow, roll back), the side-by-side comparison of two versions, and
the scoring every judgement of a classifier uses (``scoring``: per-class recall and precision,
balanced accuracy, cost per part, the paired cost test; pure numpy, importable from anywhere).

May import: agent.types, agent.errors, agent.config, agent.inference, agent.monitor
(calibration and profiles for the builder), agent.ingest.csvio.
"""
