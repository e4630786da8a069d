"""Columnar batches that flow through the hot path: one numpy array per field, not one object
per sample, so the cost per sample stays a fraction of a microsecond."""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.types import Prediction, Sample

HASH_BASE = 0x100000001B3  # the FNV-64 prime, used as the polynomial base
_POWERS: dict[int, np.ndarray] = {}
# numpy scalars made once: creating them per call costs more than the hashing itself
_S27, _S30, _S31 = np.uint64(27), np.uint64(30), np.uint64(31)
_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _powers(k: int) -> np.ndarray:
    if k not in _POWERS:
        _POWERS[k] = np.array([pow(HASH_BASE, k - j, 1 << 64) for j in range(k)], dtype=np.uint64)
    return _POWERS[k]


def inputs_hash(x: np.ndarray) -> np.ndarray:
    """64-bit hash of each row's float32 inputs, vectorised over rows (no loop over features).

    Definition (so the hub can recompute it): w_j = the row's float32 values as uint32 words;
    h = sum_j w_j * B^(k-j) mod 2^64 with B = 0x100000001B3, then the splitmix64 finaliser.
    Lets "why did the model call this part NOK" be traced to the exact inputs.
    """
    words = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    h = words @ _powers(words.shape[1])  # integer arrays wrap silently: that is the mod 2^64
    h ^= h >> _S30
    h *= _M1
    h ^= h >> _S27
    h *= _M2
    h ^= h >> _S31
    return np.asarray(h)


@dataclass(frozen=True, slots=True)
class SampleBatch:
    ids: list[str]
    timestamps: np.ndarray  # float64, epoch seconds
    x: np.ndarray  # float32 (n, features), in bundle input order

    def __len__(self) -> int:
        return len(self.ids)

    def slice(self, start: int, stop: int) -> SampleBatch:
        return SampleBatch(self.ids[start:stop], self.timestamps[start:stop], self.x[start:stop])

    def samples(self) -> list[Sample]:
        return [Sample(i, float(t), tuple(row)) for i, t, row in
                zip(self.ids, self.timestamps.tolist(), self.x.tolist(), strict=True)]

    @staticmethod
    def from_samples(samples: list[Sample]) -> SampleBatch:
        return SampleBatch([s.sample_id for s in samples],
                           np.array([s.timestamp for s in samples], dtype=np.float64),
                           np.array([s.values for s in samples], dtype=np.float32).reshape(len(samples), -1))


@dataclass(frozen=True, slots=True)
class PredictionBatch:
    model_name: str
    model_version: str
    bundle_sha256: str
    sample_ids: list[str]
    sample_ts: np.ndarray
    predicted_ts: float
    score: np.ndarray  # the monitored score: P(positive class), max P, or the regression value
    label_idx: np.ndarray | None  # index into classes, for classifiers
    classes: list[str]
    # the uint64 inputs hashes, or None until first asked for (``hashes``): then they are made
    # of ``inputs``, the float32 rows the model saw. Made late, they are made once per flush for
    # every batch the outbox record joins, not per batch of 64: for a cheap model the hashing
    # was a fifth of its pipeline
    known_hashes: np.ndarray | None
    inputs: np.ndarray | None = None
    _made: list[np.ndarray] = field(default_factory=list, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def hashes(self) -> np.ndarray:
        if self.known_hashes is not None:
            return self.known_hashes
        if not self._made:
            assert self.inputs is not None, "a PredictionBatch needs its hashes or its inputs"
            self._made.append(inputs_hash(self.inputs))
        return self._made[0]

    def slice(self, start: int, stop: int) -> PredictionBatch:
        return PredictionBatch(
            self.model_name, self.model_version, self.bundle_sha256, self.sample_ids[start:stop],
            self.sample_ts[start:stop], self.predicted_ts, self.score[start:stop],
            None if self.label_idx is None else self.label_idx[start:stop], self.classes,
            None if self.known_hashes is None else self.known_hashes[start:stop],
            None if self.inputs is None else self.inputs[start:stop])

    @staticmethod
    def concat(batches: list[PredictionBatch]) -> PredictionBatch:
        """Join batches of one model version (the flusher stores one record per flush)."""
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        classifier = first.label_idx is not None
        return PredictionBatch(
            first.model_name, first.model_version, first.bundle_sha256,
            [i for b in batches for i in b.sample_ids], np.concatenate([b.sample_ts for b in batches]),
            batches[-1].predicted_ts, np.concatenate([b.score for b in batches]),
            np.concatenate([b.label_idx for b in batches if b.label_idx is not None]) if classifier else None,
            first.classes, *PredictionBatch._joined_hashes(batches))

    @staticmethod
    def _joined_hashes(batches: list[PredictionBatch]) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(known hashes, inputs) of batches joined: rows still unhashed stay so, to be hashed
        in one go."""
        if all(b.known_hashes is None and not b._made and b.inputs is not None for b in batches):
            return None, np.concatenate([b.inputs for b in batches if b.inputs is not None])
        return np.concatenate([b.hashes for b in batches]), None

    @staticmethod
    def concat_by_version(batches: list[PredictionBatch]) -> list[PredictionBatch]:
        by_version: dict[str, list[PredictionBatch]] = {}
        for b in batches:
            by_version.setdefault(b.bundle_sha256, []).append(b)
        return [PredictionBatch.concat(group) for group in by_version.values()]

    def outputs(self, i: int) -> dict[str, Any]:
        if self.label_idx is None:
            return {"value": float(self.score[i])}
        return {"label": self.classes[int(self.label_idx[i])], "score": round(float(self.score[i]), 6)}

    def prediction(self, i: int) -> Prediction:
        return Prediction(self.sample_ids[i], float(self.sample_ts[i]), self.predicted_ts,
                          self.model_name, self.model_version, self.bundle_sha256,
                          f"{int(self.hashes[i]):016x}", self.outputs(i))

    def predictions(self) -> list[Prediction]:
        return [self.prediction(i) for i in range(len(self))]


_HEAD = struct.Struct("<III")  # rows, header length, compressed part length


def encode_predictions(batch: PredictionBatch) -> bytes:
    """One outbox record per flush: a JSON header, then ids, timestamps and labels compressed
    (they repeat), then scores and input hashes raw (random bits do not compress: skip the work)."""
    n = len(batch)
    header = json.dumps({"model": batch.model_name, "version": batch.model_version,
                         "sha": batch.bundle_sha256, "classes": batch.classes,
                         "predicted_ts": batch.predicted_ts,
                         "classifier": batch.label_idx is not None},
                        separators=(",", ":")).encode()
    labels = (batch.label_idx if batch.label_idx is not None else np.zeros(n)).astype(np.int16)
    ids = "\x00".join(batch.sample_ids).encode()
    packed = zlib.compress(b"".join([
        header, np.uint32(len(ids)).tobytes(), ids,
        batch.sample_ts.astype(np.float64).tobytes(), labels.tobytes()]), 1)
    raw = batch.score.astype(np.float32).tobytes() + batch.hashes.astype(np.uint64).tobytes()
    return _HEAD.pack(n, len(header), len(packed)) + packed + raw


def decode_predictions(blob: bytes) -> list[dict[str, Any]]:
    n, hlen, plen = _HEAD.unpack_from(blob)
    packed = zlib.decompress(blob[_HEAD.size:_HEAD.size + plen])
    head = json.loads(packed[:hlen])
    id_len = int(np.frombuffer(packed, np.uint32, 1, hlen)[0])
    off = hlen + 4
    ids = packed[off:off + id_len].decode().split("\x00") if n else []
    off += id_len
    ts = np.frombuffer(packed, np.float64, n, off)
    labels = np.frombuffer(packed, np.int16, n, off + 8 * n)
    raw = blob[_HEAD.size + plen:]
    score = np.frombuffer(raw, np.float32, n, 0)
    hashes = np.frombuffer(raw, np.uint64, n, 4 * n)
    out = []
    for i in range(n):
        outputs: dict[str, Any] = (
            {"label": head["classes"][labels[i]], "score": float(score[i])} if head["classifier"]
            else {"value": float(score[i])})
        out.append({"id": ids[i], "ts": float(ts[i]), "model": head["model"], "v": head["version"],
                    "sha": head["sha"], "in": f"{int(hashes[i]):016x}", "out": outputs,
                    "predicted_ts": head["predicted_ts"]})
    return out
