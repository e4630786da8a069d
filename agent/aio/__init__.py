"""asyncio building blocks every component uses: jittered backoff, supervision with restart,
cancellation checks, the connection state of a link, rate-limited logging, and the bounded
channel between two pipeline stages (drops counted, closing it tells the consumer to finish).

May import: agent.types, agent.errors, agent.config. Nothing else.
"""
