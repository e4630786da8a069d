"""Alarm management: detector conditions become incidents with one notification when raised,
re-notified only on escalation; acknowledgement, shelving (expiry, audit) and the flood guard;
and the watch applying operators' requests from the state directory."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from agent.config import ModelConfig, MonitoringConfig
from agent.inference.batches import SampleBatch
from agent.inference.model import load_model
from agent.monitor.alarms import MonitorEvent
from agent.monitor.incidents import FloodGuard, IncidentBook, IncidentEvent, audit_record
from agent.monitor.watch import ModelWatch, write_request

T0 = 1.75e9


def det(index: int, level: str = "alarm", kind: str = "data_drift", detector: str = "cusum",
        feature: str | None = "t1", start: int | None = None) -> MonitorEvent:
    return MonitorEvent(index, T0 + index, kind, feature, detector, level, 30.0, 25.0, "m", "1",
                        [feature] if feature else [], start, None if start is None else T0 + start)


def ok(index: int, **kw: str | None) -> MonitorEvent:
    return det(index, "ok", **kw)  # type: ignore[arg-type]


def sent(events: list[IncidentEvent]) -> list[tuple[str, str, str]]:
    return [(e.action, e.level, e.reason) for e in events if e.notify]


def test_one_notification_when_raised_features_join_silently() -> None:
    book = IncidentBook("m", "1", "sha")
    first = book.apply([det(100, "warning", start=90)])
    assert sent(first) == [("raised", "warning", "raised by data_drift/cusum [t1]")]
    incident = first[0].incident_id
    # other features and other input detectors join it: shown, not notified
    assert book.apply([det(105, "warning", feature="t2"), det(110, "warning", detector="psi", feature="t3"),
                       det(111, "warning", kind="multivariate_drift", detector="pca_cusum",
                           feature=None)]) == []
    current = book.current
    assert current is not None and current.id == incident
    assert current.features == ["t1", "t2", "t3"] and current.start_index == 90
    escalated = book.apply([det(120, "alarm", feature="t2", start=95)])
    assert sent(escalated) == [("escalated", "alarm", "warning -> alarm (data_drift/cusum [t2])")]
    assert escalated[0].incident_id == incident and escalated[0].start_index == 95


def test_acknowledged_incident_whose_cause_persists_does_not_renotify() -> None:
    book = IncidentBook("m", "1", "sha")
    raised = book.apply([det(100)])
    incident = raised[0].incident_id
    acked = book.acknowledge(incident, "shift-lead", time.time())
    assert [(e.action, e.acknowledged_by) for e in acked] == [("acknowledged", "shift-lead")]
    # the drift goes on: its detectors fire again and again, also after ending and restarting
    later = book.apply([det(150), det(160, feature="t2"), ok(700), det(720), det(900, detector="psi")])
    assert sent(later) == [] and book.current is not None and book.current.id == incident
    assert book.counts["notifications"] == 1
    # back to normal for good: an acknowledged alarm closes, and a new problem is a new incident
    closed = book.apply([ok(1400), ok(1400, feature="t2"), ok(1401, detector="psi")])
    assert [e.action for e in closed] == ["closed"] and book.current is None
    again = book.apply([det(5000, feature="t7")])
    assert sent(again) and again[0].incident_id != incident


def test_an_unacknowledged_alarm_back_to_normal_waits_for_its_acknowledgement() -> None:
    book = IncidentBook("m", "1", "sha")
    incident = book.apply([det(100)])[0].incident_id
    returned = book.apply([ok(600)])
    assert [(e.action, e.state) for e in returned] == [("returned", "returned")]
    assert book.current is not None  # latched
    assert [e.action for e in book.acknowledge(incident, "op", time.time())] == ["acknowledged", "closed"]
    assert book.current is None


def test_a_new_kind_of_detector_renotifies_once_consequential_ones_are_grouped() -> None:
    book = IncidentBook("m", "1", "sha")
    book.apply([det(100)])
    book.acknowledge(None, "op", time.time())
    # the prediction drifts and CBPE drops because the inputs did: the same problem
    grouped = book.apply([det(110, kind="prediction_drift", feature="score"),
                          det(130, kind="performance", detector="cbpe", feature=None)])
    assert sent(grouped) == []
    assert book.current is not None
    assert book.current.consequential == ["prediction_drift/cusum"]
    assert book.current.acknowledged_by == "op"  # nothing new to look at
    # labelled outcomes say the model is wrong now: new evidence, notified once
    labels = book.apply([det(300, "warning", kind="performance", detector="error_cusum", feature=None,
                             start=210)])
    assert [(a, lvl) for a, lvl, _ in sent(labels)] == [("escalated", "alarm")]
    assert "new kind of detector: labels" in labels[0].reason and labels[0].start_index == 210
    assert book.current.acknowledged_by is None  # it needs looking at again
    assert sent(book.apply([det(320, kind="performance", detector="error_cusum", feature=None)])) == []
    assert book.current.families == ["inputs", "outputs", "labels"]


def test_shelving_suppresses_then_expires_and_is_audited() -> None:
    book = IncidentBook("m", "1", "sha")
    incident = book.apply([det(100, "warning")])[0].incident_id
    now = time.time()
    shelved = book.shelve(incident, now + 3600, "night-shift", "sensor being replaced", now)
    assert [(e.action, e.shelved_by, e.shelve_reason) for e in shelved] == [
        ("shelved", "night-shift", "sensor being replaced")]
    assert audit_record(shelved[0]) == ("night-shift", "alarm_shelved", "sensor being replaced",
                                        {"incident": incident, "index": 100, "features": ["t1"],
                                         "until": now + 3600})
    quiet = book.apply([det(200, "alarm")])  # it escalates while shelved: recorded, not sent
    assert [(e.action, e.notify, e.suppressed) for e in quiet] == [("escalated", False, "shelved")]
    assert book.expire(now + 1800) == []  # not yet
    back = book.expire(now + 3601)
    assert [(e.action, e.notify, e.level) for e in back] == [("unshelved", True, "alarm")]
    assert audit_record(back[0])[:2] == ("agent", "alarm")
    assert [j["action"] for j in book.current.journal] == ["shelved", "unshelved"]  # type: ignore[union-attr]
    assert book.counts["suppressed_shelved"] == 1


def test_a_shelved_cause_that_comes_back_stays_quiet_until_the_shelf_expires() -> None:
    book = IncidentBook("m", "1", "sha")
    incident = book.apply([det(100, "warning")])[0].incident_id
    now = time.time()
    book.shelve(incident, now + 3600, "op", "known", now)
    book.apply([ok(700)])  # a warning back to normal closes
    assert book.current is None
    back = book.apply([det(900, "warning")])  # the same cause (inputs, t1) again
    assert [(e.action, e.notify, e.suppressed) for e in back] == [("raised", False, "shelved")]
    other = book.apply([ok(1500), det(2000, "warning", feature="t9")])  # another feature: not shelved
    assert sent(other) == [("raised", "warning", "raised by data_drift/cusum [t9]")]


def test_flood_guard_holds_back_and_counts() -> None:
    guard = FloodGuard(limit=2, window_s=600)
    book = IncidentBook("m", "1", "sha", guard)
    events = []
    for n in range(5):  # five separate problems in five minutes
        events += book.apply([det(n * 60, "warning", feature=f"t{n}"), ok(n * 60 + 30, feature=f"t{n}")])
    raised = [e for e in events if e.action == "raised"]
    assert [e.notify for e in raised] == [True, True, False, False, False]
    assert [e.suppressed for e in raised][2:] == ["flood"] * 3
    assert guard.held_total == 3 and book.counts["suppressed_flood"] == 3
    later = book.apply([det(700, "warning", feature="t9")])  # the window has moved on
    assert later[0].notify and later[0].held_back == 3  # the next one sent says how many were held


def test_incident_book_state_roundtrip() -> None:
    book = IncidentBook("m", "1", "sha")
    incident = book.apply([det(100)])[0].incident_id
    book.acknowledge(incident, "op", 1.0)
    other = IncidentBook("m", "1", "sha")
    other.restore(book.state())
    assert other.current is not None and other.current.acknowledged_by == "op"
    assert sent(other.apply([det(300, feature="t5")])) == []  # still the same, acknowledged incident


def test_watch_applies_requests_from_the_state_directory(trained: dict[str, Path], tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    model = load_model(ModelConfig(bundle=trained["bundle"], trusted_keys=[trained["pub"]]),
                       trained["bundle"], tmp_path / "staging")
    watch = ModelWatch(model, MonitoringConfig(), tmp_path)
    rows = np.loadtxt(trained["holdout"], delimiter=",", skiprows=1, usecols=range(8), dtype=np.float32)
    rows[:, 0:3] += 8.0  # a new resin: the barrel temperatures jump
    events: list[IncidentEvent] = []
    for start in range(0, len(rows), 32):
        x = rows[start:start + 32]
        batch = SampleBatch([str(start + i) for i in range(len(x))], T0 + start + np.arange(len(x)), x)
        preds, out = model.predict(batch)
        events += watch.on_batch(batch, preds, out)
    incident = watch.incidents.current
    assert incident is not None and incident.level == "alarm"
    assert [e.action for e in events if e.notify][:1] == ["raised"]
    assert any(f.startswith("barrel_temp") for f in incident.features)
    write_request(tmp_path, "shelve", incident.id, model.name, "op", "resin trial", time.time() + 60)
    write_request(tmp_path, "ack", "ffffffff", model.name, "op")  # no such incident
    applied = watch.tick()
    assert [e.action for e in applied] == ["shelved"]
    assert "no such open incident" in caplog.text
    assert not list((tmp_path / "alarm-requests").glob("*.json"))  # all taken
    watch.close()
    again = ModelWatch(model, MonitoringConfig(), tmp_path)  # a restart keeps the incident
    assert again.incidents.current is not None and again.incidents.current.shelved_by == "op"
    again.close()
