"""Helpers shared by the benchmarks."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from agent.demo.sim.process import history
from agent.models.builder import build_bundle
from agent.models.bundle import generate_keypair
from agent.models.training import train_onnx, write_csv


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def pin_to_one_core() -> None:
    """'On one core': the benchmark and its baseline share one CPU, as on a busy gateway."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})


def scratch_dir(prefix: str) -> Path:
    """A temporary folder removed when the benchmark's process exits: a bench's agents write
    outboxes of 60-90 MB each, and `make bench` left 1.9 GB of them in /tmp before."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def release(path: Path) -> None:
    """Remove a scratch folder now, not at exit (an agent's outbox of 60-90 MB)."""
    shutil.rmtree(path, ignore_errors=True)


def one_thread_session(model_path: Path) -> Any:
    """Bare onnxruntime on one thread, the baseline every pipeline figure is measured against."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(model_path), opts, providers=["CPUExecutionProvider"])


def use_all_cores() -> None:
    """Undo pin_to_one_core for benchmarks whose peers (server, agent process) need their own."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


def quick() -> bool:
    return bool(os.environ.get("BENCH_QUICK"))


def trained_bundle(kind: str = "gbt") -> tuple[Path, Path, np.ndarray]:
    """A signed bundle of the simulated line's model; returns (bundle, public key, sample X)."""
    root = scratch_dir("bench-")
    x, names, y = history(3000, seed=1)
    write_csv(root / "train.csv", x, names, y)
    model = train_onnx(x, y, root / "model.onnx", kind=kind)
    generate_keypair(root / "k.pem", root / "k.pub")
    build_bundle(model, root / "train.csv", "label", f"bench-{kind}", "1", root / "bundle",
                 positive_class="NOK", signing_key=root / "k.pem")
    return root / "bundle", root / "k.pub", x.astype(np.float32)
