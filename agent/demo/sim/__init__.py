"""Simulated injection moulding line: OPC UA machine, MQTT quality station (OK/NOK and the
cycle time of each part)."""
