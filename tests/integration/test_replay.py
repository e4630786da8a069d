"""replay: the CLI contract, bad CSV handling, and the same events as `run` on the same data."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from agent.cli import main
from agent.demo.sim.broker import free_port
from agent.demo.sim.line import SimOptions, SimulatedLine
from agent.demo.sim.process import COUNTER_TAG, PROCESS_TAGS, DriftStep
from agent.inference.batches import PredictionBatch, SampleBatch
from tests.helpers.running import base_config, opcua_source, running_agent, wait_for


def write_config(tmp_path: Path, trained: dict[str, Path]) -> Path:
    cfg = base_config(tmp_path / "state", [opcua_source(4840)],
                      model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]})
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def history_rows(trained: dict[str, Path]) -> tuple[list[str], list[list[str]]]:
    with trained["holdout"].open() as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    return header, rows[1:]


def test_replay_report_contract(tmp_path: Path, trained: dict[str, Path]) -> None:
    header, rows = history_rows(trained)
    # shift the barrel temperatures half-way: a new resin
    out_rows = []
    for i, row in enumerate(rows):
        values = [float(v) for v in row[:-1]]
        if i >= len(rows) // 2:
            values[0:3] = [v + 6.0 for v in values[0:3]]
        out_rows.append([f"{1.7e9 + 30 * i:.0f}", *[f"{v:.3f}" for v in values], row[-1] if i % 2 else ""])
    csv_path = write_csv(tmp_path / "line.csv", ["timestamp", *header[:-1], "label"], out_rows)
    report_path = tmp_path / "report.json"
    assert main(["replay", "--config", str(write_config(tmp_path, trained)), "--csv", str(csv_path),
                 "--out", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    assert report["samples"] == len(rows)
    assert report["model"]["name"] == "moulding-nok" and len(report["model"]["sha256"]) == 64
    assert report["events"], "a 3-sigma shift of three features must be seen"
    for event in report["events"]:
        assert set(event) >= {"index", "timestamp", "kind", "feature", "detector", "level", "score",
                              "threshold"}
        assert event["kind"] in ("data_drift", "prediction_drift", "multivariate_drift", "performance")
        assert event["level"] in ("warning", "alarm")
        assert isinstance(event["index"], int) and 0 <= event["index"] < len(rows)
    first_data = next(e for e in report["events"] if e["kind"] == "data_drift")
    assert first_data["index"] >= len(rows) // 2 and first_data["feature"].startswith("barrel_temp")
    assert report["metrics"]["labelled_rows"] == len(rows) // 2
    assert 0.5 < report["metrics"]["accuracy"] <= 1.0
    # the detections make one incident with its features and estimated start, notified once
    # when raised and once more when it became an alarm
    assert report["counts"]["incidents"] == 1
    incident = report["incidents"][0]
    assert {"barrel_temp_1", "barrel_temp_2", "barrel_temp_3"} <= set(incident["features"])
    assert len(rows) // 2 - 40 <= incident["start_index"] <= first_data["index"]
    sent = [n for n in report["notifications"] if n["sent"]]
    assert 1 <= len(sent) <= 3 and all(n["incident"] == incident["id"] for n in sent)
    assert sent[0]["action"] == "raised"


def test_replay_needs_no_sources_and_prints_a_summary(tmp_path: Path, trained: dict[str, Path],
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = history_rows(trained)
    out_rows = []
    for i, row in enumerate(rows):
        values = [float(v) for v in row[:-1]]
        if i >= 200:
            values[0:3] = [v + 6.0 for v in values[0:3]]
        out_rows.append([f"{1.7e9 + 30 * i:.0f}", *[f"{v:.3f}" for v in values]])
    csv_path = write_csv(tmp_path / "line.csv", ["timestamp", *header[:-1]], out_rows)
    config = tmp_path / "replay.yaml"  # the model and how to watch it: no sources, no features
    config.write_text(yaml.safe_dump({"model": {"bundle": str(trained["bundle"]),
                                                "trusted_keys": [str(trained["pub"])]},
                                      "monitoring": {"max_notifications_per_10min": 5}}))
    assert main(["replay", "--config", str(config), "--csv", str(csv_path),
                 "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{len(rows)} samples of moulding-nok 1.0.0")
    assert "1 incident(s)" in out[1]
    assert out[2].split() == ["incident", "raised", "level", "change", "from", "detectors", "/", "features"]
    report = json.loads((tmp_path / "r.json").read_text())
    incident = report["incidents"][0]
    assert out[3].split()[:3] == [incident["id"], str(incident["opened_index"]), "alarm"]
    assert len(out) <= 20  # one screen


def test_replay_config_with_settings_it_does_not_read_exits_2(tmp_path: Path, trained: dict[str, Path],
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "replay.yaml"
    config.write_text(yaml.safe_dump({"model": {"bundle": str(trained["bundle"]), "trusted_keys":
                                                [str(trained["pub"])]}, "features": {"mode": "periodic"}}))
    rc = main(["replay", "--config", str(config), "--csv", str(trained["holdout"]),
               "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and "features: not read by replay; a replay config needs only model and monitoring" in err


BAD = [
    ("missing column", lambda h, r: ([c for c in h if c != "mould_temp"],
                                     [[v for c, v in zip(h, row, strict=True) if c != "mould_temp"]
                                      for row in r]),
     "missing column(s) mould_temp"),
    ("non-numeric", lambda h, r: (h, [*r[:4], [r[4][0], "hot", *r[4][2:]], *r[5:]]),
     "row 6, column 'barrel_temp_1': 'hot' is not a number"),
    ("unsorted", lambda h, r: (h, [*r[:7], [str(float(r[7][0]) - 1000), *r[7][1:]], *r[8:]]),
     "row 9, column 'timestamp': earlier than the row before"),
    ("bad timestamp", lambda h, r: (h, [*r[:2], ["yesterday", *r[2][1:]], *r[3:]]),
     "row 4, column 'timestamp': 'yesterday' is neither ISO 8601 nor epoch seconds"),
    ("unknown class", lambda h, r: (h, [*r[:3], [*r[3][:-1], "MAYBE"], *r[4:]]),
     "row 5, column 'label': 'MAYBE' is not one of the model's classes"),
]


@pytest.mark.parametrize(("name", "mutate", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_csv_exits_2_with_row_and_column(tmp_path: Path, trained: dict[str, Path], name: str,
                                             mutate: Any, message: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    header, rows = history_rows(trained)
    good = [[f"{1.7e9 + 30 * i:.0f}", *row] for i, row in enumerate(rows[:20])]
    h, r = mutate(["timestamp", *header], good)
    csv_path = write_csv(tmp_path / "bad.csv", h, r)
    rc = main(["replay", "--config", str(write_config(tmp_path, trained)), "--csv", str(csv_path),
               "--out", str(tmp_path / "r.json")])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "Traceback" not in err


async def test_replay_gives_the_same_events_as_run(tmp_path: Path, trained: dict[str, Path]) -> None:
    """Run the agent on the simulated line through a resin change, record what it sampled, replay
    that CSV: the same incidents (same ids) and notifications, index for index. (No labels
    here: when labels arrive differs by nature between the two.)"""
    port = free_port()
    recorded: list[tuple[list[str], np.ndarray, np.ndarray]] = []

    def record(samples: SampleBatch, preds: PredictionBatch) -> None:
        recorded.append((samples.ids, samples.timestamps.copy(), samples.x.copy()))

    options = SimOptions(opcua_port=port, speed=300, drift=[DriftStep("resin", 100 * 30.0)])
    async with SimulatedLine(options) as line:
        cfg = base_config(tmp_path / "state", [opcua_source(port, line.ns)],
                          features={"mode": "trigger", "trigger_tag": COUNTER_TAG},
                          model={"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]})
        async with running_agent(cfg) as agent:
            agent.prediction_listeners.append(record)
            await wait_for(lambda: agent.sources[0].status.connected, what="connected")
            await line.run_machine(stop_after=260)
            await wait_for(lambda: agent.predictions >= 259, what="all parts predicted")
            await asyncio.sleep(0.2)
            run_events = [(e.index, e.action, e.incident_id, e.kind, e.detector, e.feature, e.level)
                          for e in agent.events if e.notify]
    assert run_events, "the resin change must be seen by the running agent"
    rows = []
    for ids, ts, x in recorded:
        for i in range(len(ids)):
            rows.append([f"{ts[i]:.6f}", *[f"{v!r}" for v in x[i].tolist()]])
    tags = list(PROCESS_TAGS)
    csv_path = write_csv(tmp_path / "recorded.csv", ["timestamp", *tags], rows)
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["replay", "--config", str(config), "--csv", str(csv_path),
                 "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    replay_events = [(n["index"], n["action"], n["incident"], *(n["detector"] or "/").split("/"),
                      n["feature"], n["level"]) for n in report["notifications"] if n["sent"]]
    assert replay_events == run_events
