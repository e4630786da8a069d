"""Simulated injection moulding line: OPC UA machine + MQTT quality station."""
