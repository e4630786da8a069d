"""Run `edge-agent run` as its own process and read its CPU time and memory from /proc."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml


class AgentProcess:
    def __init__(self, config: dict[str, Any], workdir: Path) -> None:
        self.config_path = workdir / "agent.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        exe = shutil.which("edge-agent") or str(Path(sys.executable).parent / "edge-agent")
        self.proc = subprocess.Popen([exe, "run", "--config", str(self.config_path)],
                                     stderr=subprocess.DEVNULL)

    def cpu_seconds(self) -> float:
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False
