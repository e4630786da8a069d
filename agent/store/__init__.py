"""What must survive a crash: the SQLite outbox (store-and-forward), the compact codec of
readings, the records a flush writes, and the hash-chained audit log.

May import: agent.types, agent.errors, agent.inference.batches. Nothing above it.
"""
