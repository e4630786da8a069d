"""The demo: a simulated injection-moulding line (OPC UA machine, MQTT QC station and cycle
times, brokers), the line's two models (quality classifier, cycle-time regressor) run by one
agent, an embedded hub, the story of drift, alarm, retrain and recovery of the quality model
beside the cycle-time model's flat error, and its report.

May import anything in agent and hub: it is an application, not a library.
"""
