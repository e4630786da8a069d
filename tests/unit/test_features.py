"""Features: order from the bundle, periodic and triggered sampling, staleness counted."""

from __future__ import annotations

from agent.config import FeaturesConfig
from agent.ingest.features import FeatureBuilder, TagSpec
from agent.types import Quality, Reading


def r(tag: str, value: float, ts: float, source: str = "plc", q: Quality = Quality.GOOD) -> Reading:
    return Reading(source, tag, value, ts, ts, q)


def specs(*tags: str, age: float = 5.0) -> list[TagSpec]:
    return [TagSpec(t, age) for t in tags]


def test_periodic_samples_in_bundle_order() -> None:
    fb = FeatureBuilder(specs("b", "a"), FeaturesConfig(mode="periodic", period_s=1.0))
    fb.update(r("a", 1.0, 100.0))
    fb.update(r("b", 2.0, 100.0))
    out = fb.due(100.0)
    assert [tuple(v) for v in out.x.tolist()] == [(2.0, 1.0)]
    assert len(fb.due(100.5)) == 0
    fb.update(r("a", 3.0, 100.9))
    out = fb.due(102.05)  # two ticks passed: 101 and 102
    assert [tuple(v) for v in out.x.tolist()] == [(2.0, 3.0), (2.0, 3.0)]
    assert out.timestamps.tolist() == [101.0, 102.0]


def test_stale_tag_makes_sample_invalid_and_is_counted() -> None:
    fb = FeatureBuilder([TagSpec("a", 5.0), TagSpec("b", 2.0)], FeaturesConfig(period_s=1.0))
    fb.update(r("a", 1.0, 100.0))
    fb.update(r("b", 1.0, 100.0))
    assert len(fb.due(101.0)) == 1
    fb.update(r("a", 1.5, 103.0))
    assert len(fb.due(103.0)) == 0  # ticks 102 and 103, judged now: b is 3 s old, its limit 2 s
    assert fb.invalid == {"stale:b": 2}
    fb.alive("plc", 103.5)  # the source confirms its subscription is alive: values are current
    assert len(fb.due(104.0)) == 1


def test_missing_and_bad_quality_are_counted() -> None:
    fb = FeatureBuilder(specs("a", "b"), FeaturesConfig(period_s=1.0))
    fb.update(r("a", 1.0, 10.0))
    assert len(fb.due(10.0)) == 0
    fb.update(r("b", 1.0, 10.5, q=Quality.BAD))
    assert len(fb.due(11.0)) == 0
    assert fb.invalid == {"missing:b": 1, "bad_quality:b": 1}
    assert fb.invalid_total == 2


def test_trigger_mode_uses_counter_as_sample_id() -> None:
    cfg = FeaturesConfig(mode="trigger", trigger_tag="counter")
    fb = FeatureBuilder(specs("a"), cfg)
    fb.update(r("counter", 40.0, 9.0))  # first value seen: the current state, not a new part
    assert len(fb.due(9.0)) == 0
    fb.update(r("a", 1.0, 10.0))
    fb.update(r("counter", 41.0, 10.0))
    fb.update(r("a", 2.0, 11.0))
    fb.update(r("counter", 42.0, 11.0))
    fb.update(r("counter", 42.0, 11.5))  # unchanged: not a new part
    out = fb.due(11.6)
    rows = list(zip(out.ids, [tuple(v) for v in out.x.tolist()], strict=True))
    assert rows == [("41", (2.0,)), ("42", (2.0,))]
    assert out.timestamps.tolist() == [10.0, 11.0]


def test_trigger_with_separate_serial_tag() -> None:
    cfg = FeaturesConfig(mode="trigger", trigger_tag="cycle_done", sample_id_tag="serial")
    fb = FeatureBuilder(specs("a"), cfg)
    fb.update(r("a", 5.0, 1.0))
    fb.update(r("serial", 9001.0, 1.0))
    fb.update(r("cycle_done", 0.0, 0.5))
    fb.update(r("cycle_done", 1.0, 1.0))
    fb.update(r("cycle_done", 0.0, 2.0))  # falling edge also changes: both are part events
    out = fb.due(2.0)
    assert out.ids == ["9001", "9001"] and out.x[0].tolist() == [5.0]


def test_process_values_of_the_same_batch_as_the_trigger_are_used() -> None:
    """The agent drains a whole notification batch before building: values that arrive after
    the counter in the same batch belong to that part."""
    fb = FeatureBuilder(specs("a"), FeaturesConfig(mode="trigger", trigger_tag="n"))
    fb.update(r("n", 0.0, 0.0))
    fb.update(r("n", 1.0, 1.0))
    fb.update(r("a", 7.0, 1.0))
    assert fb.due(1.0).x.tolist() == [[7.0]]


def test_liveness_from_a_source_before_any_of_its_readings() -> None:
    """A builder made while sources are running (a config change) may hear 'alive' first."""
    fb = FeatureBuilder([TagSpec("a", 5.0)], FeaturesConfig(mode="periodic", period_s=1.0))
    fb.alive("plc", 100.0)
    fb.alive("other", 100.5)
    fb.update(Reading("plc", "a", 1.0, 100.0, 100.0, Quality.GOOD))
    assert fb.latest("a") == 1.0
