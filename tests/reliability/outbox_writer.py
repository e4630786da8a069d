"""Child process for the kill -9 test: appends as fast as it can through the agent's own
AsyncOutbox and prints each sequence number once append() has returned (= acknowledged)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from agent.store.outbox import AsyncOutbox, NewRecord, Priority


async def main(path: Path, synchronous: str) -> None:
    async with AsyncOutbox(path, 1 << 30, synchronous) as box:
        n = 0
        while True:
            records = [NewRecord("predictions", Priority.PREDICTIONS, f"payload-{n + i}".encode() * 20)
                       for i in range(50)]
            last = await box.append(records)
            n += 50
            sys.stdout.write(f"{last}\n")
            sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2]))
