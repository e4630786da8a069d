"""Sinks for predictions and alarms: MQTT publishing (bounded queue, never blocks inference)
and OPC UA write-back to the PLC.

May import: agent.types, agent.errors, agent.config, agent.aio, agent.inference.batches,
agent.ingest.mqtt_session (the one reconnecting MQTT connection).
"""
