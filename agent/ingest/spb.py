"""Sparkplug B payloads through pysparkplug: what the Sparkplug source reads and the Sparkplug
output writes.

pysparkplug (Apache-2.0, typed, protobuf >= 5) is used for the schema: its generated protobuf
classes decode every payload, its Topic, DataType, Metric and payload classes encode what the
agent sends. Its high-level decoder drops metric properties, and the Quality property is how
Sparkplug edge nodes (Ignition, Tahu) say a value is bad or stale, so decoding reads the
generated message directly. Its MQTT client (paho-mqtt 1.x) is not used: the agent's MQTT
connections are aiomqtt, which is why pysparkplug is installed without its dependencies
(see docs/commissioning.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from agent.errors import SourceError

try:
    import pysparkplug as spb
    from google.protobuf.message import DecodeError
    from pysparkplug._protobuf import Payload as PbPayload  # the generated class (schema)
except ImportError as exc:  # optional: only Sparkplug configs need it
    raise SourceError(
        "the Sparkplug B source and output need pysparkplug: pip install --no-deps "
        "'pysparkplug==0.6.1' 'protobuf>=5.28' (see docs/commissioning.md)") from exc

__all__ = ["DecodeError", "MetricValue", "PbPayload", "SpbTopic", "decode", "parse_topic",
           "rebirth_command", "spb", "valid_name", "whole"]

NAMESPACE = "spBv1.0"
REBIRTH = "Node Control/Rebirth"
BD_SEQ = "bdSeq"
# Quality property values as Ignition and Tahu edge nodes send them (OPC DA quality codes)
QUALITY_GOOD = 192
QUALITY_STALE = 500
NUMERIC = {spb.DataType.INT8, spb.DataType.INT16, spb.DataType.INT32, spb.DataType.INT64,
           spb.DataType.UINT8, spb.DataType.UINT16, spb.DataType.UINT32, spb.DataType.UINT64,
           spb.DataType.FLOAT, spb.DataType.DOUBLE, spb.DataType.BOOLEAN}


@dataclass(frozen=True)
class SpbTopic:
    group: str
    message_type: str  # NBIRTH, NDATA, NDEATH, DBIRTH, DDATA, DDEATH, NCMD, DCMD, STATE
    edge_node: str
    device: str | None


def parse_topic(topic: str) -> SpbTopic | None:
    """spBv1.0/<group>/<type>/<edge node>[/<device>]; None for anything else (STATE too)."""
    parts = topic.split("/")
    if len(parts) not in (4, 5) or parts[0] != NAMESPACE or parts[2] == "STATE":
        return None
    return SpbTopic(parts[1], parts[2], parts[3], parts[4] if len(parts) == 5 else None)


@dataclass(frozen=True)
class MetricValue:
    name: str | None
    alias: int | None
    datatype: int
    value: float | None  # None: not a number (a string, a dataset) or null
    quality: int  # QUALITY_GOOD, QUALITY_STALE or anything else = bad
    timestamp_ms: int | None
    numeric: bool


_INTEGER = {spb.DataType.INT8, spb.DataType.INT16, spb.DataType.INT32, spb.DataType.INT64,
            spb.DataType.UINT8, spb.DataType.UINT16, spb.DataType.UINT32, spb.DataType.UINT64}
MAX_NAME = 512  # characters of a metric name or an id in a topic


def valid_name(text: str) -> bool:
    """A metric name or topic id the agent turns into a tag name: printable (no control
    characters, line breaks or escapes that would forge log lines or break a config) and short."""
    return 0 < len(text) <= MAX_NAME and text.isprintable()


def whole(value: float | None) -> int | None:
    """A finite number as int (a bdSeq), else None."""
    return int(value) if value is not None and math.isfinite(value) else None


def _number(metric: Any, datatype: int) -> float | None:
    """The metric's value as float; None for null and for datatypes that are not numbers. NaN
    and infinities are returned as they are: the intake counts them (not_finite)."""
    if metric.is_null:
        return None
    field = metric.WhichOneof("value")
    if field is None or datatype not in NUMERIC:
        return None
    # the value must sit in the field of its datatype: 7 in int_value is no BOOLEAN (Tahu puts
    # UInt32 in long_value, pysparkplug in int_value: both are integers)
    expected = {"int_value", "long_value"} if datatype in _INTEGER else {spb.DataType(datatype).field}
    if field not in expected:
        raise DecodeError(f"a {spb.DataType(datatype).name} value in {field}")
    raw = getattr(metric, field)
    try:
        value = spb.DataType(datatype).decode(raw)  # two's complement of signed ints, floats
        return float(value)  # type: ignore[arg-type]  # NUMERIC types decode to numbers
    except (ValueError, TypeError, OverflowError, NotImplementedError):
        raise DecodeError(f"metric value {raw!r} does not fit datatype {datatype}") from None


def _quality(metric: Any) -> int:
    props = metric.properties
    for key, prop in zip(props.keys, props.values, strict=False):
        if key.lower() == "quality":
            field = prop.WhichOneof("value")
            if field in ("int_value", "long_value"):
                return int(getattr(prop, field))
    return QUALITY_GOOD


@dataclass(frozen=True)
class Decoded:
    timestamp_ms: int | None
    seq: int | None
    metrics: list[MetricValue]
    refused: list[str]  # why each metric left out was refused (a bad name, a value off its type)


def decode(raw: bytes, datatypes: dict[str, int] | None = None,
           aliases: dict[int, tuple[str, int]] | None = None) -> Decoded:
    """Raise DecodeError on bytes that are not a Sparkplug payload; a metric that is malformed
    on its own is left out and said why in ``refused``. A data message may leave out the
    datatype: the birth's (by name, or by alias: alias -> (name, datatype)) is used then."""
    payload = PbPayload.FromString(raw)
    out, refused = [], []
    for m in payload.metrics:
        name = m.name if m.HasField("name") else None
        alias = m.alias if m.HasField("alias") else None
        if name is not None and not valid_name(name):
            refused.append(f"metric name {name[:40]!r} has control characters or is longer than "
                           f"{MAX_NAME}")
            continue
        datatype = m.datatype
        if not datatype:
            known = (aliases or {}).get(alias) if alias is not None else None
            datatype = (datatypes or {}).get(name or "") or (known[1] if known else 0)
        try:
            value = _number(m, datatype)
        except DecodeError as exc:
            refused.append(f"{name or f'alias {alias}'}: {exc}")
            continue
        out.append(MetricValue(name, alias, datatype, value, _quality(m),
                               m.timestamp if m.HasField("timestamp") else None,
                               datatype in NUMERIC))
    return Decoded(payload.timestamp if payload.HasField("timestamp") else None,
                   payload.seq if payload.HasField("seq") else None, out, refused)


def rebirth_command(now_ms: int) -> bytes:
    metric = spb.Metric(timestamp=now_ms, name=REBIRTH, datatype=spb.DataType.BOOLEAN, value=True)
    return bytes(spb.NCmd(timestamp=now_ms, metrics=(metric,)).encode(include_dtypes=True))
