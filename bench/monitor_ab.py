"""The monitor of another commit against this checkout's, in one process.

    python -m bench.monitor_ab main            replay check, then timing (6 runs)
    python -m bench.monitor_ab main --runs 12  more runs of the timing
    python -m bench.monitor_ab main --rtol 1e-9  floats within 1e-9 (sums in another order)

The other commit's monitor modules (COMPARED: the scans, the CUSUM bank, the detectors, the
tie, CBPE, finite-value and innovation modules, calibration and the monitor) are loaded from git
as separate modules beside this checkout's (every other module is shared), so both monitors see
the same process, the same inputs and the same machine load.

Replay check: a seeded 200,000-row stream of 20 inputs with a mean shift, a variance change, a
score drift, a broken correlation, values far beyond training and exact training edges, at
batch 64 and at mixed batch sizes; every event, every PSI look and every snapshot part's state
(CUSUM sums, rings) must be the same, bit for bit. Timing: bench.drift's monitor_cost stream,
the two monitors fed chunk by chunk in turn (4,096 samples of batches of 64, after each run's
first window), fastest and median chunk of each: on a shared machine the load then falls on
both alike.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

from agent.inference.batches import PredictionBatch, SampleBatch, inputs_hash
from agent.models.bundle import Manifest
from agent.monitor.monitor import ModelMonitor
from bench.common import emit, pin_to_one_core
from bench.drift import cost_stream
from tests.helpers.synthetic import batches, logistic_scores, manifest_for

ROOT = Path(__file__).resolve().parent.parent
Batch = tuple[SampleBatch, PredictionBatch, np.ndarray]


def _source(ref: str, path: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:{path}"], check=True,
                          capture_output=True, text=True).stdout


def _module(name: str, text: str) -> types.ModuleType:
    mod = types.ModuleType(name)
    mod.__file__ = f"<{name}>"
    sys.modules[name] = mod
    exec(compile(text, mod.__file__, "exec"), mod.__dict__)
    return mod


# the modules whose cost and results are compared, in import order (those a commit has)
COMPARED = ("scans", "cusum", "detectors", "scores", "pca", "tie", "calibrate", "cbpe", "finite",
            "innovation", "monitor")


def other_monitor(ref: str) -> Any:
    """``ref``'s ModelMonitor class, on ``ref``'s own copies of the COMPARED modules."""
    tag = "ab_" + "".join(c if c.isalnum() else "_" for c in ref)
    known = subprocess.run(["git", "-C", str(ROOT), "ls-tree", "--name-only", ref, "agent/monitor/"],
                           check=True, capture_output=True, text=True).stdout.split()
    parts = [p for p in COMPARED if f"agent/monitor/{p}.py" in known]
    module = None
    for part in parts:
        text = _source(ref, f"agent/monitor/{part}.py")
        for other in parts:
            text = text.replace(f"from agent.monitor.{other} import", f"from {tag}_{other} import")
        module = _module(f"{tag}_{part}", text)
    assert module is not None and parts[-1] == "monitor"
    return module.ModelMonitor


def drift_stream(seed: int = 7, n: int = 200_000, k: int = 20) -> tuple[Manifest, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(5000, k)).astype(np.float32).astype(np.float64)  # exact min / max hits
    manifest = manifest_for(train, logistic_scores(train))
    x = rng.normal(size=(n, k))
    x[40_000:60_000, 3] += 0.8  # mean shift
    x[80_000:100_000, 5] *= 2.0  # variance
    x[120_000:140_000, 0] += 1.0  # score drift (the model reads f0 and f1)
    x[150_000:170_000, 9] = 0.9 * x[150_000:170_000, 8] + 0.1 * x[150_000:170_000, 9]  # correlation
    x[175_000:185_000, 7] = 10.0  # far beyond the training maximum
    features = manifest.profile["features"]
    for j, row in enumerate(rng.choice(n, size=4000, replace=False).tolist()):  # exact edges
        edges = features[f"f{j % k}"]["edges"]
        x[row, j % k] = edges[j % len(edges)]
    return manifest, x, logistic_scores(x)


def sized_batches(x: np.ndarray, score: np.ndarray, sizes: list[int], t0: float = 1.7e9) -> list[Batch]:
    """Batches of the given sizes, float64 inputs (so exact training edges arrive exact)."""
    out: list[Batch] = []
    start = 0
    for size in sizes:
        stop = min(len(x), start + size)
        if start >= stop:
            break
        samples = SampleBatch([str(i) for i in range(start, stop)], t0 + np.arange(start, stop, dtype=float),
                              x[start:stop])
        s = score[start:stop]
        preds = PredictionBatch("synthetic", "1", "ab" * 32, samples.ids, samples.timestamps, 0.0,
                                s, (s < 0.5).astype(np.int64), ["NOK", "OK"], inputs_hash(x[start:stop]))
        out.append((samples, preds, np.maximum(s, 1 - s)))
        start = stop
    return out


def _event_key(event: Any, digits: int | None = None) -> str:
    """An event's fields but its wall clock; floats to ``digits`` significant digits if given."""
    def shown(v: Any) -> Any:
        return f"{v:.{digits}g}" if digits is not None and isinstance(v, float) else v
    return repr(sorted((k, shown(v)) for k, v in vars(event).items() if k != "emitted"))


def _same_state(a: Any, b: Any, where: int, rtol: float = 0.0) -> None:
    pa, pb = a.parts(), b.parts()
    assert pa.keys() == pb.keys(), where
    for name in pa:
        sa, sb = pa[name].state(), pb[name].state()
        assert sa.keys() == sb.keys(), (where, name)
        for key in sa:
            va, vb = np.asarray(sa[key]), np.asarray(sb[key])
            same = np.allclose(va, vb, rtol=rtol, atol=rtol, equal_nan=True) if (
                rtol and va.dtype.kind == "f") else np.array_equal(va, vb, equal_nan=va.dtype.kind == "f")
            assert va.dtype == vb.dtype and same, f"batch {where}: {name}/{key} differs"


def replay(other: Any, manifest: Manifest, prepared: list[Batch],
           rtol: float = 0.0) -> collections.Counter[tuple[str, str]]:
    """Both monitors through the same batches; every difference is an AssertionError (with
    ``rtol``, floats within it: a change that sums in another order)."""
    digits = None if not rtol else max(1, int(-np.log10(rtol)) - 1)
    a, b = other(manifest), ModelMonitor(manifest)
    looks: dict[str, list[tuple[int, np.ndarray]]] = {"a": [], "b": []}
    for mon, name in ((a, "a"), (b, "b")):
        def recording(x: np.ndarray, inner: Any = mon.psi.update, name: str = name) -> Any:
            out = inner(x)
            looks[name] += [(i, v.copy()) for i, v in out]
            return out
        setattr(mon.psi, "update", recording)  # noqa: B010 (an instance's method, replaced)
    events: collections.Counter[tuple[str, str]] = collections.Counter()
    for at, (samples, preds, conf) in enumerate(prepared):
        ea, eb = a.update(samples, preds, conf), b.update(samples, preds, conf)
        assert [_event_key(e, digits) for e in ea] == [_event_key(e, digits) for e in eb], (
            f"batch {at}: events differ")
        events.update((e.detector, e.level) for e in ea)
        if at % 25 == 0 or at == len(prepared) - 1:
            _same_state(a, b, at, rtol)
    assert len(looks["a"]) == len(looks["b"]) > 0
    for (ia, va), (ib, vb) in zip(looks["a"], looks["b"], strict=True):
        assert ia == ib and (np.allclose(va, vb, rtol=rtol, atol=rtol) if rtol else np.array_equal(va, vb)), (
            f"PSI look at {ia} differs")
    return events


def check(other: Any, rtol: float = 0.0) -> None:
    manifest, x, score = drift_stream()
    at_64 = replay(other, manifest, sized_batches(x, score, [64] * (len(x) // 64 + 1)), rtol)
    sizes = np.random.default_rng(3).choice([1, 3, 17, 32, 64, 100, 257, 1000], size=len(x)).tolist()
    mixed = replay(other, manifest, sized_batches(x, score, sizes), rtol)
    by_detector = {f"{d}/{level}": count for (d, level), count in sorted(at_64.items())}
    emit(bench="monitor_ab_replay", rows=len(x), identical=not rtol, rtol=rtol,
         events_batch_64=sum(at_64.values()), events_mixed=sum(mixed.values()), by_detector=by_detector)


def timing(other: Any, runs: int, chunk: int = 4096) -> dict[str, Any]:
    # bench.drift's monitor_cost stream: tags in groups of five that share a factor, the
    # model's outputs on its newest 1,000 rows as held out (every detector has work, the tie
    # CUSUMs and the innovation GLR too)
    manifest, x = cost_stream()
    prepared = list(batches(x, logistic_scores(x), 64))
    warm, per_chunk = 1024 // 64, chunk // 64
    times: dict[str, list[float]] = {"other": [], "this": []}
    for run in range(runs):
        monitors = {"other": other(manifest), "this": ModelMonitor(manifest)}
        for mon in monitors.values():
            for samples, preds, conf in prepared[:warm]:
                mon.update(samples, preds, conf)
        order = ["other", "this"] if run % 2 == 0 else ["this", "other"]
        for at in range(warm, len(prepared) - per_chunk + 1, per_chunk):
            for name in order:
                mon = monitors[name]
                started = time.perf_counter()
                for samples, preds, conf in prepared[at:at + per_chunk]:
                    mon.update(samples, preds, conf)
                times[name].append((time.perf_counter() - started) / chunk * 1e6)
    fast = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    return {"chunks": len(times["this"]), "other_fastest_us": round(fast["other"], 2),
            "this_fastest_us": round(fast["this"], 2), "other_median_us": round(median["other"], 2),
            "this_median_us": round(median["this"], 2),
            "ratio_fastest": round(fast["this"] / fast["other"], 3),
            "ratio_median": round(median["this"] / median["other"], 3)}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.monitor_ab")
    parser.add_argument("ref", help="the commit to compare with (main, a hash)")
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--no-check", action="store_true", help="timing only")
    parser.add_argument("--rtol", type=float, default=0.0,
                        help="floats equal within this (a change that sums in another order); 0: bit for bit")
    args = parser.parse_args(argv)
    other = other_monitor(args.ref)
    if not args.no_check:
        check(other, args.rtol)
    pin_to_one_core()
    emit(bench="monitor_ab_cost", ref=args.ref, runs=args.runs, **timing(other, args.runs))


if __name__ == "__main__":
    main(sys.argv[1:])
