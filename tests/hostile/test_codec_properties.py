"""The outbox codec stores any timestamp and value as its contract says, at any offset
(hypothesis), and still reads records written by the first format."""

from __future__ import annotations

import json
import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.store.codec import EXACT_MS, CodecError, decode_readings, encode_readings
from agent.types import Quality, Reading

NOW = 1_796_115_518.3826945
DAY = 86400.0

any_float = st.floats(allow_nan=True, allow_infinity=True, width=64)
plausible = st.floats(min_value=NOW - 400 * DAY, max_value=NOW + 400 * DAY)
offset = st.one_of(st.floats(min_value=-1e9, max_value=1e9), st.sampled_from(
    [-30 * DAY, -24.9 * DAY, 24.9 * DAY, 2**31 / 1000, -(2**31) / 1000 - 0.001, 0.0]))


@st.composite
def readings(draw: st.DrawFn) -> list[Reading]:
    n = draw(st.integers(0, 40))
    names = draw(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=24)), min_size=1,
                          max_size=8))
    out = []
    for _ in range(n):
        source, tag = draw(st.sampled_from(names))
        receive = draw(st.one_of(plausible, plausible, any_float))
        source_ts = draw(st.one_of(plausible.map(lambda x: x), any_float,
                                   offset.map(lambda o, r=receive: r + o)))
        out.append(Reading(source, tag, draw(any_float), source_ts, receive,
                           draw(st.sampled_from(list(Quality)))))
    return out


def expected_ts(ts: float) -> float:
    """The contract: nearest millisecond when finite and within 2**50 ms, else the very float."""
    if math.isfinite(ts) and abs(ts * 1000.0) <= EXACT_MS:
        return int(np.rint(ts * 1000.0)) / 1000.0  # an integer k: -0.0 is 0
    return ts


def same_float(a: float, b: float) -> bool:
    return struct.pack("<d", a) == struct.pack("<d", b)


@settings(max_examples=300, deadline=None)
@given(readings())
def test_every_reading_round_trips_by_contract(batch: list[Reading]) -> None:
    back = decode_readings(encode_readings(batch))
    assert len(back) == len(batch)
    for got, sent in zip(back, batch, strict=True):
        assert (got.source, got.tag, got.quality) == (sent.source, sent.tag, sent.quality)
        assert same_float(got.value, sent.value)  # bit for bit, NaN payload included
        for have, want in ((got.source_ts, sent.source_ts), (got.receive_ts, sent.receive_ts)):
            expect = expected_ts(want)
            assert same_or_nan(have, expect), (want, have)
            if math.isfinite(want) and abs(want) < 1e12:
                # half a millisecond, plus what float64 itself cannot tell apart at this size
                # (at 2.8e11 s one step is 6e-5 s: .6835 s stores as .684 s, 0.549 ms away)
                assert abs(have - want) <= 0.0005 + 4 * math.ulp(want)
    # decoding is a fixed point: what was read back is stored unchanged a second time
    again = decode_readings(encode_readings(back))
    for a, b in zip(again, back, strict=True):
        assert same_or_nan(a.source_ts, b.source_ts) and same_or_nan(a.receive_ts, b.receive_ts)


def same_or_nan(a: float, b: float) -> bool:
    return same_float(a, b) or (math.isnan(a) and math.isnan(b))


@pytest.mark.parametrize("offset_days", [-30, -24.9, -24.8, 24.8, 24.9, 30, -3650, 3650])
def test_source_offsets_beyond_32_bits_of_milliseconds_do_not_wrap(offset_days: float) -> None:
    r = Reading("plc", "t", 1.0, NOW + offset_days * DAY, NOW)
    (back,) = decode_readings(encode_readings([r]))
    assert back.source_ts == pytest.approx(r.source_ts, abs=0.0006)


def test_receive_gaps_beyond_32_bits_of_milliseconds_do_not_wrap() -> None:
    batch = [Reading("plc", "t", float(i), NOW + i * 40 * DAY, NOW + i * 40 * DAY) for i in range(3)]
    back = decode_readings(encode_readings(batch))
    assert [b.receive_ts for b in back] == pytest.approx([r.receive_ts for r in batch], abs=0.0006)


def test_non_finite_source_timestamps_are_kept_not_replaced_by_the_receive_time() -> None:
    batch = [Reading("plc", "t", 1.0, ts, NOW) for ts in (math.nan, math.inf, -math.inf, 1e300)]
    back = decode_readings(encode_readings(batch))
    assert math.isnan(back[0].source_ts)
    assert [b.source_ts for b in back[1:]] == [math.inf, -math.inf, 1e300]
    assert all(b.receive_ts == pytest.approx(NOW, abs=0.0006) for b in back)


def test_more_tags_than_16_bits_in_one_record() -> None:
    batch = [Reading("s", f"t{i}", float(i), NOW, NOW) for i in range(70_000)]
    back = decode_readings(encode_readings(batch))
    assert back[-1].tag == "t69999" and back[-1].value == 69999.0


def _encode_v1(readings: list[Reading]) -> bytes:
    """The first format, as the agent wrote it before (an outbox of an older version)."""
    n = len(readings)
    names: dict[tuple[str, str], int] = {}
    idx = np.array([names.setdefault((r.source, r.tag), len(names)) for r in readings], np.uint16)
    src = np.array([r.source_ts for r in readings])
    rcv = np.array([r.receive_ts for r in readings])
    val = np.array([r.value for r in readings])
    qual = np.zeros(n, np.uint8)
    base = float(rcv[0])
    src_ms = np.round((src - base) * 1000).astype(np.int64)
    rcv_ms = np.round((rcv - base) * 1000).astype(np.int64)
    columns = b"".join([idx.tobytes(), np.diff(rcv_ms, prepend=0).astype(np.int32).tobytes(),
                        (src_ms - rcv_ms).astype(np.int32).tobytes(),
                        val.view(np.uint8).reshape(-1, 8).T.tobytes(), qual.tobytes()])
    header = json.dumps([list(k) for k in names], separators=(",", ":")).encode()
    return struct.pack("<IdI", n, base, len(header)) + zlib.compress(header + columns, 6)


def test_records_of_the_first_format_still_decode() -> None:
    batch = [Reading("plc", f"t{i % 5}", i * 1.5, NOW + i - 0.25, NOW + i) for i in range(20_000)]
    back = decode_readings(_encode_v1(batch))
    assert len(back) == 20_000 and back[7].tag == "t2" and back[7].value == 10.5
    assert back[7].source_ts == pytest.approx(NOW + 6.75, abs=0.0006)


@pytest.mark.parametrize("blob", [b"", b"\x78\x9c", b"\x78\x9cgarbage", zlib.compress(b"\x00" * 17),
                                  zlib.compress(struct.pack("<BIqI", 0, 10**9, 0, 0)),
                                  b"\x01\x00\x00\x00" + b"\x00" * 12])
def test_damaged_blobs_are_a_codec_error(blob: bytes) -> None:
    with pytest.raises(CodecError):
        decode_readings(blob)
