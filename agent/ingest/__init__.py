"""Data in: protocol sources (OPC UA, MQTT, Sparkplug B), the feature builder that turns tag
readings into model input rows, QC labels, and CSV reading for offline tools.

May import: agent.types, agent.errors, agent.config, agent.aio, agent.inference.batches.
Never imports the service, the hub link or the model lifecycle.
"""
