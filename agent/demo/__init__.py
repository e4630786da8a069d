"""The demo: a simulated injection-moulding line (OPC UA machine, MQTT QC station, brokers),
an embedded hub, the story of drift, alarm, retrain and recovery, and its report.

May import anything in agent and hub: it is an application, not a library.
"""
