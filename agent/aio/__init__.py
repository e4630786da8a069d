"""asyncio building blocks every component uses: jittered backoff, supervision with restart,
cancellation checks, the connection state of a link and rate-limited logging.

May import: agent.types, agent.errors, agent.config. Nothing else.
"""
