"""The gateway's side of the hub: one HTTP client, the uploader that drains the outbox, the
sync loop (desired state, downloads, status reports), remote config overlays and the
labelled training samples.

May import: agent.types, agent.errors, agent.config, agent.aio, agent.store,
agent.inference.batches, agent.models (lifecycle and store, to install what the hub sends).
"""
