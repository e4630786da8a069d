"""The monitor judged on streams it was not developed on, as a user would run it.

For every line shape and seed (bench/line_streams.py, its own generator): train a gradient-
boosting model on the first 3,000 rows of 4,000 rows of history, build the bundle through the
CLI with the defaults (no --holdout-csv: the newest 1,000 rows, which the model never fitted,
are its holdout; 1 false alarm and 5 warnings a week per model at 1 Hz), then replay each case
through the CLI with a config that has only the model. Per case: the delay in rows (in labelled
rows for the concept changes) from the change to the first alarm notification, false alarms
before the change, and warnings; next to river's ADWIN and PageHinkley (defaults) on every tag
of the same stream (and, where labels exist, on the model's error bits). For the mean shift, the
reference a goal must be judged against: the delay of an oracle that knows the change (its tags,
its size, the drift-free VAR(2) law of the fitted rows; bench/oracle.py), at the same budget,
with its h / KL (its threshold over its information a row) and its alarms on the clean run.

    python -m bench.drift_cases                # dev shape seeds 0-4 and every held-out shape/seed
    python -m bench.drift_cases --group loop-7 # only the groups whose title holds this text
    BENCH_QUICK=1 python -m bench.drift_cases  # two seeds each, 20,000 drift-free rows

The dev shape with seeds 0-4 is what the monitor was first tuned on. The first held-out set
(shapes held-12 and held-6, and dev-8 with seeds 100-104) was looked at once the monitor stood,
and what it showed was then fixed (so it became development data too); the second held-out set
(shapes fresh-10 and fresh-5, and dev-8 with seeds 300-304), fixed in the code before the
first was looked at, was run only for the final figures. Shapes of another generator
(bench/line_streams.py LoopLine: ringing control loops, heavy-tailed noise) came with the second
round of issue 10: loop-7 (seeds 500-504) was run once, showed scale-CUSUM false alarms on every
drift-free run, and the fix was made on it (so it is development data now); loop-9 (seeds
700-704), defined after that fix and before anything of it was run, then showed single wild
values of its heavier-tailed noise raising mean-CUSUM alarms, which were fixed on it in turn;
loop-11 (seeds 900-904), defined after that, was run for the figures of that round. All of
them were then development data for the pooled mean CUSUM (agent/monitor/pooled.py); loop-13
(seeds 1100-1104: 13 tags, a group of five, a faster ring, Laplace noise), defined before
anything of the pooled detector was run on it, was its held-out check. Then, each committed
before the change it was to judge ran on it and run once: late-9 and loop-15 (the scale
CUSUM's 1.3x design), last-11 and loop-10, fifth-7 and loop-12 (the mean CUSUM's k, not kept),
and sixth-10 and loop-14 (the pooled mean CUSUM's larger share of the budget).
"""

from __future__ import annotations

import contextlib
import io
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agent.cli import main as cli
from bench import oracle
from bench.common import emit, quick
from bench.line_shapes import (
    DEV,
    EIGHTH,
    ELEVENTH,
    FIFTH,
    FOURTEENTH,
    FRESH,
    HELD_OUT,
    LAST,
    LATE,
    NINTH,
    OTHER,
    SEVENTH,
    SIXTH,
    TENTH,
    THIRTEENTH,
    TWELFTH,
    Shape,
)
from bench.line_streams import Line, Stream, line_for

CHANGE, HORIZON, HISTORY, FIT = 2000, 3000, 4000, 3000
CASES = ("mean_shift", "variance", "correlation", "concept", "concept_30", "clean")
GOALS = {"mean_shift": 90, "variance": 500, "correlation": 1000, "concept": 120, "concept_30": 300}


@dataclass
class Outcome:
    delay: int | None  # rows (labelled rows for concept cases) from the change to the first alarm
    false_alarms: int
    warnings: int
    what: tuple[str, ...] = ()  # the detectors of our false alarms and warnings
    h_over_kl: float | None = None  # the oracle's: its threshold over its information a row


def run_cli(args: list[str]) -> int:
    """The command line, in process, its output kept off the benchmark's JSON lines."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return cli(args)


def build(line: Line, seed: int, work: Path) -> tuple[Path, Any, np.ndarray]:
    from agent.inference.runtimes import runtime_for_file
    from agent.models.training import train_onnx

    history = line.stream("clean", HISTORY, 0, seed=seed * 1000 + 1)
    labels = np.where(history.nok, "NOK", "OK")
    model = train_onnx(history.x[:FIT], labels[:FIT], work / "model.onnx", seed=seed)
    holdout: list[str] = []
    if line.shape.extra.get("holdout_csv"):  # as the user: the fitted rows, then the rest
        fitted = Stream(history.x[:FIT], history.nok[:FIT], history.names, None)
        fitted.write_csv(work / "train.csv")
        rest = Stream(history.x[FIT:], history.nok[FIT:], history.names, None)
        rest.write_csv(work / "holdout.csv", first=FIT)
        holdout = ["--holdout-csv", str(work / "holdout.csv")]
    else:  # the builder holds out the newest 1,000 rows itself
        history.write_csv(work / "train.csv")
    rc = run_cli(["bundle", "build", "--model", str(model), "--train-csv", str(work / "train.csv"),
                  "--label", "label", "--name", "line", "--version", "1", "--out", str(work / "bundle"),
                  "--positive-class", "NOK", *holdout])
    if rc:
        raise RuntimeError(f"bundle build failed ({rc})")
    (work / "replay.yaml").write_text(yaml.safe_dump(
        {"model": {"bundle": str(work / "bundle"), "allow_unsigned": True}}))
    return work / "replay.yaml", runtime_for_file(model, line.shape.tags), history.x


def ours(config: Path, csv: Path, change: int | None, labelled: np.ndarray, concept: bool,
         work: Path) -> Outcome:
    out = work / "report.json"
    if run_cli(["replay", "--config", str(config), "--csv", str(csv), "--out", str(out)]):
        raise RuntimeError(f"replay of {csv} failed")
    sent = [n for n in json.loads(out.read_text())["notifications"] if n["sent"]]
    alarms = [n["index"] for n in sent if n["level"] == "alarm"]
    # warnings before the change are false; after it they announce the drift
    false = [n for n in sent if change is None or n["index"] < change]
    warnings = sum(1 for n in false if n["level"] == "warning")
    what = tuple(f"{n['level']}:{n['detector']}" for n in false)
    if change is None:
        return Outcome(None, len(alarms), warnings, what)
    after = [i for i in alarms if i >= change]
    delay = None
    if after:
        delay = int(labelled[change:after[0] + 1].sum()) if concept else after[0] - change
    return Outcome(delay, sum(1 for i in alarms if i < change), warnings, what)


def river_detections(factory: Callable[[], Any], columns: list[np.ndarray]) -> list[int]:
    """Rows at which any of the per-column detectors fires."""
    fired: set[int] = set()
    for values in columns:
        det = factory()
        for i, v in enumerate(values.tolist()):
            det.update(v)
            if det.drift_detected:
                fired.add(i)
    return sorted(fired)


def river(factory: Callable[[], Any], stream: Stream, errors: np.ndarray | None, labelled: np.ndarray,
          concept: bool) -> Outcome:
    columns = [stream.x[:, j] for j in range(stream.x.shape[1])]
    hits = river_detections(factory, columns)
    if errors is not None:  # the model's error bits of the labelled rows, mapped back to rows
        rows = np.flatnonzero(labelled)
        hits = sorted(set(hits) | {int(rows[i]) for i in river_detections(factory, [errors[rows]])})
    if stream.change is None:
        return Outcome(None, len(hits), 0)
    after = [i for i in hits if i >= stream.change]
    delay = None
    if after:
        delay = int(labelled[stream.change:after[0] + 1].sum()) if concept else after[0] - stream.change
    return Outcome(delay, sum(1 for i in hits if i < stream.change), 0)


def known_change(line: Line, history: np.ndarray, stream: Stream, seed: int) -> (
        tuple[Outcome, oracle.Oracle]):
    """The oracle of the mean shift (bench/oracle.py): fitted on the model's fitted rows,
    calibrated on the held-out ones, told the shift (from the same seed's drift-free stream)."""
    clean = line.stream("clean", len(stream.x), CHANGE, seed=seed)
    known = oracle.fit(history, FIT, oracle.known_shift(stream.x, clean.x, CHANGE))
    delay, false = oracle.delay(known, stream.x, CHANGE)
    return Outcome(delay, false, 0, h_over_kl=known.h / known.kl), known


def one_line(shape: Shape, seed: int, clean_rows: int) -> dict[str, dict[str, Outcome]]:
    from river import drift

    line = line_for(shape, seed)
    results: dict[str, dict[str, Outcome]] = {}
    with tempfile.TemporaryDirectory(prefix="drift-cases-") as tmp:
        work = Path(tmp)
        config, runtime, history = build(line, seed, work)
        for n, case in enumerate(CASES):
            kind = "concept" if case.startswith("concept") else case
            rows = clean_rows if case == "clean" else CHANGE + HORIZON
            stream_seed = seed * 1000 + 10 + n
            stream = line.stream(kind, rows, CHANGE, seed=stream_seed)
            csv = work / f"{case}.csv"
            labelled = stream.write_csv(csv, 0.3 if case == "concept_30" else 1.0, seed=seed)
            concept = kind == "concept"
            scores = runtime.predict(stream.x.astype(np.float32)).scores
            errors = (scores.argmax(axis=1) != np.where(stream.nok, 0, 1)).astype(np.float64)
            results[case] = {
                "ours": ours(config, csv, stream.change, labelled, concept, work),
                "adwin": river(drift.ADWIN, stream, errors, labelled, concept),
                "page_hinkley": river(drift.PageHinkley, stream, errors, labelled, concept),
            }
            if case == "mean_shift":
                results[case]["oracle"], known = known_change(line, history, stream, stream_seed)
            if case == "clean":  # the check of its calibration: its alarms on the long clean run
                results[case]["oracle"] = Outcome(None, len(known.alarms(stream.x)), 0)
    return results


def summarise(runs: list[dict[str, dict[str, Outcome]]]) -> dict[str, dict[str, dict[str, Any]]]:
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for case in CASES:
        table[case] = {}
        for who in ("ours", "adwin", "page_hinkley", "oracle"):
            if who not in runs[0][case]:
                continue
            got = [r[case][who] for r in runs]
            delays = [o.delay for o in got]
            found = [d for d in delays if d is not None]
            table[case][who] = {
                "detected": f"{len(found)}/{len(delays)}",
                "median_delay": statistics.median(found) if found else None,
                "max_delay": max(found) if found else None,
                "false_alarms": sum(o.false_alarms for o in got),
                "warnings": sum(o.warnings for o in got) if who == "ours" else None,
                "false_by": sorted({w for o in got for w in o.what}) if who == "ours" else None,
            }
            if who == "oracle" and case == "mean_shift":
                table[case][who]["h_over_kl"] = [round(o.h_over_kl or 0.0, 1) for o in got]
    return table


def markdown(title: str, table: dict[str, dict[str, dict[str, Any]]], clean_rows: int) -> str:
    def cell(r: dict[str, Any], with_warnings: bool, clean: bool) -> str:
        if clean:
            text = ""
        elif r["median_delay"] is None:
            text = f"missed ({r['detected']})"
        else:
            text = f"{r['median_delay']:g} / {r['max_delay']:g} ({r['detected']})"
        fa = f"FA {r['false_alarms']}"
        warn = f", W {r['warnings']}" if with_warnings and r["warnings"] is not None else ""
        return f"{text}{'; ' if text else ''}{fa}{warn}"

    lines = [f"**{title}**", "",
             "| case | goal (rows) | ours: median / max delay (found); false alarms, false warnings | "
             "river ADWIN | river PageHinkley | oracle that knows the change: median / max; h/KL |",
             "| --- | --- | --- | --- | --- | --- |"]
    for case in CASES:
        row = table[case]
        goal = GOALS.get(case)
        name = f"clean ({clean_rows:,} rows)" if case == "clean" else case
        lines.append(f"| {name} | {'0 alarms, <= 2 W' if case == 'clean' else f'<= {goal}'} | "
                     f"{cell(row['ours'], True, case == 'clean')} | "
                     f"{cell(row['adwin'], False, case == 'clean')} | "
                     f"{cell(row['page_hinkley'], False, case == 'clean')} | {oracle_cell(row)} |")
    return "\n".join(lines)


def oracle_cell(row: dict[str, dict[str, Any]]) -> str:
    if "oracle" not in row:
        return ""
    r = row["oracle"]
    if "h_over_kl" not in r:
        return f"FA {r['false_alarms']}"
    ratio = statistics.median(r["h_over_kl"])
    found = "missed" if r["median_delay"] is None else f"{r['median_delay']:g} / {r['max_delay']:g}"
    return f"{found} ({r['detected']}); FA {r['false_alarms']}; h/KL {ratio:.0f} (median)"


def groups() -> list[tuple[str, list[tuple[Shape, int]]]]:
    """Every set of lines, (title, [(shape, seed)]), in the order they were defined; titles
    name what each set was (development data, or a held-out set and which)."""
    seeds = (0, 1) if quick() else (0, 1, 2, 3, 4)
    held_seeds = (100, 101) if quick() else (100, 101, 102, 103, 104)
    fresh_seeds = (300, 301) if quick() else (300, 301, 302, 303, 304)
    other_seeds = (500, 501) if quick() else (500, 501, 502, 503, 504)
    loop9_seeds = (700, 701) if quick() else (700, 701, 702, 703, 704)
    loop11_seeds = (900, 901) if quick() else (900, 901, 902, 903, 904)
    loop13_seeds = (1100, 1101) if quick() else (1100, 1101, 1102, 1103, 1104)
    late_seeds = {"late-9": (1300, 1301, 1302, 1303, 1304), "loop-15": (1500, 1501, 1502, 1503, 1504),
                  "last-11": (1700, 1701, 1702, 1703, 1704), "loop-10": (1900, 1901, 1902, 1903, 1904),
                  "fifth-7": (2100, 2101, 2102, 2103, 2104), "loop-12": (2300, 2301, 2302, 2303, 2304),
                  "sixth-10": (2500, 2501, 2502, 2503, 2504), "loop-14": (2700, 2701, 2702, 2703, 2704),
                  "var-8": (2900, 2901, 2902, 2903, 2904), "var-13": (3100, 3101, 3102, 3103, 3104),
                  "eighth-9": (3300, 3301, 3302, 3303, 3304), "loop-16": (3500, 3501, 3502, 3503, 3504),
                  "var-10": (3700, 3701, 3702, 3703, 3704),
                  "ninth-11": (3900, 3901, 3902, 3903, 3904), "loop-12b": (4100, 4101, 4102, 4103, 4104),
                  "var-14": (4300, 4301, 4302, 4303, 4304),
                  "tenth-13": (4500, 4501, 4502, 4503, 4504), "loop-11b": (4700, 4701, 4702, 4703, 4704),
                  "var-9": (4900, 4901, 4902, 4903, 4904),
                  "eleventh-10": (5100, 5101, 5102, 5103, 5104), "loop-14b": (5300, 5301, 5302, 5303, 5304),
                  "var-12": (5500, 5501, 5502, 5503, 5504),
                  "twelfth-12": (5700, 5701, 5702, 5703, 5704), "loop-15b": (5900, 5901, 5902, 5903, 5904),
                  "var-11": (6100, 6101, 6102, 6103, 6104),
                  "thirteenth-9": (6300, 6301, 6302, 6303, 6304), "loop-12c": (6500, 6501, 6502, 6503, 6504),
                  "var-13b": (6700, 6701, 6702, 6703, 6704),
                  "fourteenth-10": (6900, 6901, 6902, 6903, 6904), "loop-13b": (7100, 7101, 7102, 7103, 7104),
                  "var-15": (7300, 7301, 7302, 7303, 7304)}
    return [
        ("developed on: dev-8, seeds " + ",".join(map(str, seeds)), [(DEV, s) for s in seeds]),
        ("first held-out set (then developed on): dev-8, seeds 100-104",
         [(DEV, s) for s in held_seeds]),
        *[(f"first held-out set (then developed on): {shape.name}", [(shape, s) for s in held_seeds])
          for shape in HELD_OUT],
        ("final held-out set: dev-8, seeds 300-304", [(DEV, s) for s in fresh_seeds]),
        *[(f"final held-out set: {shape.name}", [(shape, s) for s in fresh_seeds]) for shape in FRESH],
        *[(f"another generator (ringing loops, heavy-tailed noise): {shape.name}, seeds "
           f"{seeds_of[0]}-{seeds_of[-1]}", [(shape, s) for s in seeds_of])
          for shape, seeds_of in zip(OTHER, (other_seeds, loop9_seeds, loop11_seeds, loop13_seeds),
                                     strict=True)],
        *[(f"third held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in LATE],
        *[(f"fourth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in LAST],
        *[(f"fifth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in FIFTH],
        *[(f"sixth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in SIXTH],
        *[(f"seventh held-out set (a third generator, --holdout-csv): {shape.name}, seeds "
           f"{late_seeds[shape.name][0]}-{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in SEVENTH],
        *[(f"eighth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in EIGHTH],
        *[(f"ninth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in NINTH],
        *[(f"tenth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in TENTH],
        *[(f"eleventh held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in ELEVENTH],
        *[(f"twelfth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in TWELFTH],
        *[(f"thirteenth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in THIRTEENTH],
        *[(f"fourteenth held-out set: {shape.name}, seeds {late_seeds[shape.name][0]}-"
           f"{late_seeds[shape.name][-1]}",
           [(shape, s) for s in late_seeds[shape.name][:2 if quick() else 5]]) for shape in FOURTEENTH],
    ]


def main() -> None:
    clean_rows = 20_000 if quick() else 50_000
    sets = groups()
    args = sys.argv[1:]
    if args[:1] == ["--dev-only"]:
        sets = sets[:1]
    elif args[:1] == ["--group"] and len(args) == 2:  # the groups whose title contains this
        sets = [g for g in sets if args[1] in g[0]]
    elif args:
        raise SystemExit("usage: python -m bench.drift_cases [--dev-only | --group TEXT]")
    for title, lines in sets:
        runs = [one_line(shape, seed, clean_rows) for shape, seed in lines]
        table = summarise(runs)
        emit(bench="drift_cases", group=title, clean_rows=clean_rows, table=table,
             goals=GOALS, markdown=markdown(title, table, clean_rows))


if __name__ == "__main__":
    main()
