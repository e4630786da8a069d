"""The running agent as a service: the pipeline graph built from the config (graph.py: which
models, which label source feeds which, the state upgrade) and run under one task group
(agent.py: sources -> intake -> a channel per model -> model units -> sinks), one unit per
model (unit.py), the outbox recorder (recorder.py), the one-model view older callers use
(compat.py), liveness and the watchdog, /healthz /readyz /metrics (health.py), config changes
(reconfigure.py), sd_notify, logging, and the status documents (reporting.py, status.py).
Health, status and the hub report read what each component publishes (``snapshot()``,
``counters()``, ``report()``, ``status``), never the agent's internals.

The top of the dependency graph: it may import every other agent package; none imports it
(except agent.cli and agent.demo, which start it, and hublink.remote_config, which asks
reconfigure what needs a restart).
"""
