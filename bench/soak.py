"""Agent RSS under the demo load: the simulated line at demo speed (10 parts/s, 9 tags each),
model inference, MQTT predictions out, QC labels in, outbox writes. Goal: <= 150 MB after 10
minutes. BENCH_SOAK_S overrides the duration (BENCH_QUICK makes it 60 s)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path

from agent.demo.run import agent_config, prepare_models
from agent.demo.sim.broker import any_broker, free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.service.agent import read_status
from bench.agentproc import AgentProcess
from bench.common import emit, quick, use_all_cores


async def run(seconds: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    bundles, pub = await asyncio.to_thread(prepare_models, work)
    async with any_broker() as broker:
        options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=300.0)
        async with SimulatedLine(options) as line:
            config = agent_config(work, options.opcua_port, line.ns, broker.port, pub)
            config["model"]["bundle"] = str(bundles[0])  # no hub in the soak: the model from disk
            agent = AgentProcess(config, work)
            machine = asyncio.create_task(line.run_machine())
            qc = asyncio.create_task(line.run_qc_station())
            samples: list[tuple[float, float]] = []
            start = time.monotonic()
            try:
                while time.monotonic() - start < seconds:
                    await asyncio.sleep(min(10.0, seconds / 20))
                    samples.append((time.monotonic() - start, agent.rss_mb()))
                status = read_status(work / "state") or {}
            finally:
                machine.cancel()
                qc.cancel()
                for task in (machine, qc):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                agent.stop()
    settled = [rss for t, rss in samples if t >= seconds / 3] or [samples[-1][1]]
    emit(bench="agent_rss", seconds=round(seconds), parts=line.parts,
         predictions=status.get("predictions"), labels=status.get("labels"),
         rss_mb_final=round(samples[-1][1], 1), rss_mb_peak=round(max(r for _, r in samples), 1),
         growth_after_first_third_pct=round(100 * (settled[-1] - settled[0]) / settled[0], 2),
         goal="<= 150 MB")


def main() -> None:
    seconds = float(os.environ.get("BENCH_SOAK_S") or (60 if quick() else 600))
    use_all_cores()
    asyncio.run(run(seconds))


if __name__ == "__main__":
    main()
