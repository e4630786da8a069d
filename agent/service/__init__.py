"""The running agent as a service: it wires the pipeline from the config and runs it under
one task group (agent.py), supervises components, serves /healthz /readyz /metrics, talks to
systemd (sd_notify), sets up logging, and writes and reads the status documents.

The top of the dependency graph: it may import every other agent package; none imports it
(except agent.cli and agent.demo, which start it).
"""
