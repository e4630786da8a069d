"""Compact encodings for what the outbox stores.

Readings are stored columnar and compressed: one record holds many readings, with tag names
as a dictionary, timestamps as millisecond integers (receive times as deltas, source times as
offsets from the receive time) and values byte-shuffled so that zlib finds the repeated
exponent bytes. That is how a week of 100 tags at 1 Hz fits in 1 GiB.

What a timestamp decodes to (the contract the property tests check):

- a finite timestamp within +-35,000 years of 1970 decodes to its nearest millisecond,
  ``k / 1000`` for the integer ``k = round(ts * 1000)``, at any distance from the receive time
  (64-bit integers where 32 bits do not suffice: no wrap, ever);
- anything else (NaN, +-inf, or a larger magnitude) decodes to the identical float64: it is kept
  in a side column, never replaced by the receive time. Whether such a reading is any good is
  the intake's decision (``agent.ingest.quality`` marks it bad), not the codec's.

Values are stored bit for bit (NaN payloads included). Blobs written by the first format (32-bit
offsets, no side column) still decode.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.types import Quality, Reading

_QUALITY_CODES = {Quality.GOOD: 0, Quality.BAD: 1, Quality.STALE: 2}
_QUALITY_FROM = {v: k for k, v in _QUALITY_CODES.items()}

_V1_HEADER = struct.Struct("<IdI")  # n readings, base timestamp (s), header json length
# A v2 record is one zlib stream (level 6), so it begins with zlib's header 78 9c. A v1 record
# began with its reading count as a little-endian uint32: 78 9c there would mean 40,056 readings
# (+ k * 65,536), more than v1 ever put in a record (20,000), so the two cannot be confused.
MAGIC = b"\x78\x9c"
_LEVEL = 6
# flags, n, base receive ms, names json length; then, with _SIDE, the side-column entries
# (receive, source): most records have none, so they cost nothing
_V2_HEADER = struct.Struct("<BIqI")
_V2_SIDE = struct.Struct("<II")
_WIDE_IDX, _WIDE_RCV, _WIDE_SRC, _SIDE = 1, 2, 4, 8
# beyond 2**50 ms (35,000 years) ts * 1000 can no longer be rounded back to the same k
EXACT_MS = 2.0**50
_I32 = (-(2**31), 2**31 - 1)


class CodecError(ValueError):
    """A stored blob is not a readings record this codec wrote (damaged or foreign)."""


def _to_ms(ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(integer milliseconds, mask of timestamps that need the side column)."""
    with np.errstate(invalid="ignore", over="ignore"):
        scaled = ts * 1000.0
        odd = ~(np.abs(scaled) <= EXACT_MS)  # NaN compares False: it lands here too
        ms = np.rint(np.where(odd, 0.0, scaled)).astype(np.int64)
    return ms, odd


def _narrow(values: np.ndarray, flag: int) -> tuple[bytes, int]:
    """32-bit where every value fits, else 64-bit; byte planes, so zlib sees the zero bytes."""
    if values.size == 0 or (values.min() >= _I32[0] and values.max() <= _I32[1]):
        return _planes(values.astype("<i4")), 0
    return _planes(values.astype("<i8")), flag


def _planes(column: np.ndarray) -> bytes:
    return column.view(np.uint8).reshape(-1, column.itemsize).T.tobytes()


def _unplanes(raw: bytes, dtype: str, n: int, off: int) -> np.ndarray:
    width = np.dtype(dtype).itemsize
    block = np.frombuffer(raw, np.uint8, n * width, off).reshape(width, n)
    return block.T.copy().view(dtype).reshape(n)


def encode_readings(readings: Sequence[Reading]) -> bytes:
    n = len(readings)
    names: dict[tuple[str, str], int] = {}
    idx = np.empty(n, dtype=np.uint32)
    src = np.empty(n, dtype=np.float64)
    rcv = np.empty(n, dtype=np.float64)
    val = np.empty(n, dtype=np.float64)
    qual = np.empty(n, dtype=np.uint8)
    for i, r in enumerate(readings):
        idx[i] = names.setdefault((r.source, r.tag), len(names))
        src[i] = r.source_ts
        rcv[i] = r.receive_ts
        val[i] = r.value
        qual[i] = _QUALITY_CODES[r.quality]
    rcv_ms, rcv_odd = _to_ms(rcv)
    src_ms, src_odd = _to_ms(src)
    # a reading whose receive time is odd has its source offset measured from 0
    base = int(rcv_ms[~rcv_odd][0]) if n and not rcv_odd.all() else 0
    rcv_rel = np.where(rcv_odd, 0, rcv_ms - base)
    deltas = np.diff(rcv_rel, prepend=0)
    offsets = np.where(src_odd, 0, src_ms - np.where(rcv_odd, 0, rcv_ms))
    flags = 0
    if len(names) > 0xFFFF:
        idx_bytes, flags = idx.astype("<u4").tobytes(), _WIDE_IDX
    else:
        idx_bytes = idx.astype("<u2").tobytes()
    rcv_bytes, wide = _narrow(deltas, _WIDE_RCV)
    flags |= wide
    src_bytes, wide = _narrow(offsets, _WIDE_SRC)
    flags |= wide
    side = b"".join(_side(mask, column) for mask, column in ((rcv_odd, rcv), (src_odd, src)))
    columns = b"".join([idx_bytes, rcv_bytes, src_bytes, _shuffle(val), qual.tobytes(), side])
    header = json.dumps([list(k) for k in names], separators=(",", ":")).encode()
    n_rcv, n_src = int(rcv_odd.sum()), int(src_odd.sum())
    head = _V2_HEADER.pack(flags | (_SIDE if n_rcv or n_src else 0), n, base, len(header))
    if n_rcv or n_src:
        head += _V2_SIDE.pack(n_rcv, n_src)
    return zlib.compress(head + header + columns, _LEVEL)


def _side(mask: np.ndarray, column: np.ndarray) -> bytes:
    where = np.flatnonzero(mask)
    return where.astype("<u4").tobytes() + column[where].astype("<f8").tobytes()


def decode_readings(blob: bytes) -> list[Reading]:
    """The readings of one stored record; CodecError when the blob is not one."""
    try:
        if blob[:len(MAGIC)] == MAGIC:
            return _decode_v2(blob)
        return _decode_v1(blob)
    except (struct.error, zlib.error, ValueError, IndexError, TypeError, KeyError) as exc:
        if isinstance(exc, CodecError):
            raise
        raise CodecError(f"not a readings record ({type(exc).__name__}: {exc})") from None


def _inflate(data: bytes, expected: int, inflater: Any = None) -> bytes:
    """Decompress no more than the header says the record holds (a forged header cannot make
    this allocate more than the columns it claims)."""
    inflater = inflater or zlib.decompressobj()
    raw: bytes = inflater.decompress(data, expected + 1)
    if len(raw) != expected or inflater.unconsumed_tail:
        raise CodecError(f"record holds {len(raw)}+ bytes where its header says {expected}")
    return raw


def _decode_v2(blob: bytes) -> list[Reading]:
    inflater = zlib.decompressobj()
    flags, n, base, hlen = _V2_HEADER.unpack(inflater.decompress(blob, _V2_HEADER.size))
    n_rcv = n_src = 0
    if flags & _SIDE:
        n_rcv, n_src = _V2_SIDE.unpack(inflater.decompress(inflater.unconsumed_tail, _V2_SIDE.size))
    idx_w = 4 if flags & _WIDE_IDX else 2
    rcv_w = 8 if flags & _WIDE_RCV else 4
    src_w = 8 if flags & _WIDE_SRC else 4
    if n_rcv > n or n_src > n:
        raise CodecError("side columns longer than the record")
    size = hlen + n * (idx_w + rcv_w + src_w + 8 + 1) + 12 * (n_rcv + n_src)
    raw = _inflate(inflater.unconsumed_tail, size, inflater)
    names = [tuple(x) for x in json.loads(raw[:hlen])]
    off = hlen
    idx = np.frombuffer(raw, f"<u{idx_w}", n, off).astype(np.int64)
    off += idx_w * n
    rcv_ms = base + np.cumsum(_unplanes(raw, f"<i{rcv_w}", n, off).astype(np.int64))
    off += rcv_w * n
    offsets = _unplanes(raw, f"<i{src_w}", n, off).astype(np.int64)
    off += src_w * n
    val = _unshuffle(raw[off:off + 8 * n], n)
    off += 8 * n
    qual = np.frombuffer(raw, np.uint8, n, off)
    off += n
    rcv_where, rcv_exact, off = _read_side(raw, n_rcv, off)
    src_where, src_exact, off = _read_side(raw, n_src, off)
    rcv_odd = np.zeros(n, dtype=bool)
    rcv_odd[rcv_where] = True
    rcv = rcv_ms / 1000.0
    rcv[rcv_where] = rcv_exact
    src_ts = (np.where(rcv_odd, 0, rcv_ms) + offsets) / 1000.0
    src_ts[src_where] = src_exact
    if n and (idx.max() >= len(names) or qual.max() > 2):
        raise CodecError("tag index or quality code out of range")
    return [
        Reading(source=str(names[idx[i]][0]), tag=str(names[idx[i]][1]), value=float(val[i]),
                source_ts=float(src_ts[i]), receive_ts=float(rcv[i]),
                quality=_QUALITY_FROM[int(qual[i])])
        for i in range(n)
    ]


def _read_side(raw: bytes, count: int, off: int) -> tuple[np.ndarray, np.ndarray, int]:
    where = np.frombuffer(raw, "<u4", count, off).astype(np.int64)
    exact = np.frombuffer(raw, "<f8", count, off + 4 * count)
    return where, exact, off + 12 * count


def _decode_v1(blob: bytes) -> list[Reading]:
    """The first format: 32-bit millisecond offsets from a float base (kept for old outboxes)."""
    n, base, hlen = _V1_HEADER.unpack_from(blob)
    raw = _inflate(blob[_V1_HEADER.size:], hlen + n * (2 + 4 + 4 + 8 + 1))
    names = [tuple(x) for x in json.loads(raw[:hlen])]
    off = hlen
    idx = np.frombuffer(raw, np.uint16, n, off)
    off += 2 * n
    rcv_ms = np.cumsum(np.frombuffer(raw, np.int32, n, off).astype(np.int64))
    off += 4 * n
    src_ms = rcv_ms + np.frombuffer(raw, np.int32, n, off)
    off += 4 * n
    val = _unshuffle(raw[off:off + 8 * n], n)
    off += 8 * n
    qual = np.frombuffer(raw, np.uint8, n, off)
    return [
        Reading(source=names[idx[i]][0], tag=names[idx[i]][1], value=float(val[i]),
                source_ts=base + src_ms[i] / 1000, receive_ts=base + rcv_ms[i] / 1000,
                quality=_QUALITY_FROM[int(qual[i])])
        for i in range(n)
    ]


def _shuffle(values: np.ndarray) -> bytes:
    return values.astype("<f8").view(np.uint8).reshape(-1, 8).T.tobytes()


def _unshuffle(buf: bytes, n: int) -> np.ndarray:
    if len(buf) != 8 * n:
        raise CodecError("value column is short")
    return np.frombuffer(buf, np.uint8).reshape(8, n).T.copy().view("<f8").reshape(n)


def encode_json(obj: Any) -> bytes:
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 1)


def decode_json(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))
