"""edge-agent sim: the simulated line as a stand-alone process (for trying configs by hand)."""

from __future__ import annotations

import argparse
import asyncio
import logging

from agent.demo.sim.line import SimOptions, SimulatedLine, node_id
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS, parse_drift
from agent.service.logsetup import setup_logging


def run_sim(args: argparse.Namespace) -> int:
    setup_logging("INFO")
    try:
        drift = parse_drift(args.drift)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    options = SimOptions(opcua_port=args.opcua_port, mqtt_host=args.mqtt_host,
                         mqtt_port=args.mqtt_port, speed=args.speed, cycle_s=args.cycle,
                         qc_delay_s=args.qc_delay, seed=args.seed, drift=drift)

    async def main() -> None:
        async with SimulatedLine(options) as line:
            log = logging.getLogger("agent.demo.sim")
            log.info("OPC UA server on opc.tcp://127.0.0.1:%d/sim; QC results to %s:%d %s, "
                     "cycle times to %s", options.opcua_port, options.mqtt_host, options.mqtt_port,
                     options.qc_topic, options.cycle_topic)
            for tag in [*PROCESS_TAGS, COUNTER_TAG]:
                log.info("  %-20s %s", tag, node_id(tag, line.ns))
            async with asyncio.TaskGroup() as tg:
                tg.create_task(line.run_machine())
                tg.create_task(line.run_qc_station())

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
    return 0
