"""Agent RSS under the demo load with 1 to 3 models on one gateway: the simulated line at demo
speed (10 parts/s, 9 tags each), every model's inference, MQTT predictions out, QC verdicts and
cycle times in as labels, outbox writes, monitors. RSS sampled every 30 s. Goal: <= 150 MB, and
flat: growth < 5% from minute 10 to minute 30.

    python -m bench soak --models 3 --minutes 30     the full case (30 minutes)

`make bench` runs a short case (3 models, BENCH_SOAK_S seconds, default 600; BENCH_QUICK 60)
and says so in its line: its growth is from a third of the run to the end, not minute 10 to 30.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time

from agent.demo.config import agent_config
from agent.demo.sim.broker import any_broker, free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.service.agent import read_status
from bench.agentproc import AgentProcess
from bench.common import emit, quick, scratch_dir, use_all_cores
from bench.models3 import model_entries

SAMPLE_S = 30.0
GOAL_MB = 150.0


async def run(seconds: float, models: int, sample_s: float = SAMPLE_S) -> None:
    work = scratch_dir("bench-soak-")
    async with any_broker() as broker:
        entries = await asyncio.to_thread(model_entries, work, models, broker.port)
        options = SimOptions(opcua_port=free_port(), mqtt_port=broker.port, speed=300.0)
        async with SimulatedLine(options) as line:
            config = agent_config(work, options.opcua_port, line.ns, broker.port, entries)
            agent = AgentProcess(config, work)
            machine = asyncio.create_task(line.run_machine())
            qc = asyncio.create_task(line.run_qc_station())
            samples: list[tuple[float, float]] = []
            start = time.monotonic()
            try:
                while time.monotonic() - start < seconds:
                    await asyncio.sleep(min(sample_s, max(0.0, seconds - (time.monotonic() - start))))
                    if agent.proc.poll() is not None:
                        raise RuntimeError(f"the agent exited with {agent.proc.returncode}: see "
                                           f"{work}/agent.yaml")
                    samples.append((time.monotonic() - start, agent.rss_mb()))
                status = read_status(work / "state") or {}
            finally:
                machine.cancel()
                qc.cancel()
                for task in (machine, qc):
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                agent.stop()
    emit(**figures(samples, seconds), bench="agent_rss_models", models=[e["name"] for e in entries],
         parts=line.parts, predictions=status.get("predictions"),
         per_model=per_model(status), sample_every_s=sample_s, goal=f"<= {GOAL_MB:g} MB, growth < 5%",
         rss_mb_by_minute={f"{t / 60:.1f}": round(rss, 1) for t, rss in samples})


def rss_at(samples: list[tuple[float, float]], t: float) -> float:
    """RSS of the first sample at or after t seconds (the last one if none)."""
    return next((rss for at, rss in samples if at >= t - 1.0), samples[-1][1])


def figures(samples: list[tuple[float, float]], seconds: float) -> dict[str, object]:
    peak = round(max(r for _, r in samples), 1)
    if seconds >= 1800:
        a, b = rss_at(samples, 600), rss_at(samples, 1800)
        return {"seconds": round(seconds), "rss_mb_minute_10": round(a, 1), "rss_mb_minute_30": round(b, 1),
                "growth_minute_10_to_30_pct": round(100 * (b - a) / a, 2), "rss_mb_peak": peak,
                "met": peak <= GOAL_MB and (b - a) / a < 0.05}
    a, b = rss_at(samples, seconds / 3), samples[-1][1]
    return {"seconds": round(seconds), "short_run": "growth from a third of the run to its end; "
            "the 30-minute case: python -m bench soak --models 3 --minutes 30",
            "rss_mb_at_third": round(a, 1), "rss_mb_final": round(b, 1),
            "growth_after_first_third_pct": round(100 * (b - a) / a, 2), "rss_mb_peak": peak}


def per_model(status: dict[str, object]) -> dict[str, object]:
    models = status.get("models")
    if not isinstance(models, dict):
        return {}
    return {name: {k: m.get(k) for k in ("predictions", "labels") if isinstance(m, dict)}
            for name, m in models.items() if isinstance(m, dict)}


def _minutes(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of minutes") from None
    if not 0 < value <= 24 * 60:
        raise argparse.ArgumentTypeError(f"{text}: give 0 < minutes <= 1440")
    return value


def main(argv: list[str] | None = None) -> None:
    """`make bench`: the short case, unless arguments say otherwise."""
    p = argparse.ArgumentParser(prog="python -m bench soak", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=int, default=3, choices=(1, 2, 3),
                   help="models on the gateway, 1 to 3 (default 3)")
    p.add_argument("--minutes", type=_minutes, default=None, help=(
        "how long (default: BENCH_SOAK_S seconds, else 10 minutes, 1 with BENCH_QUICK)"))
    args = p.parse_args(argv)
    if args.minutes is not None:
        seconds = args.minutes * 60
    else:
        seconds = float(os.environ.get("BENCH_SOAK_S") or (60 if quick() else 600))
    use_all_cores()
    asyncio.run(run(seconds, args.models, SAMPLE_S if seconds >= 300 else 10.0))


if __name__ == "__main__":
    main()
