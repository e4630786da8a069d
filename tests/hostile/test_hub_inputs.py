"""Hostile bodies and names against a real hub over loopback HTTP (SQLite and PostgreSQL): every
one a 4xx naming the field, never a 500, nothing stored half-way; the property test of the
telemetry decoder; gateway ids; the gateway audit chain's resend window."""

from __future__ import annotations

import gzip
import json
import math
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.hublink.uploader import batch_body
from agent.models.bundle import generate_keypair
from agent.store.audit import GENESIS, entry_hash
from agent.store.outbox import StoredRecord
from hub.api.telemetry import decode_batch
from hub.ids import InvalidName, check_gateway_id
from hub.limits import HubLimits, LimitError
from hub.server import HubServer
from hub.storage import AgentAudit, Telemetry, TrainingSample, add_admin_token, add_gateway, audit_chains
from hub.storage.ingest import check_pending_chains, store_audit

BIG = 1 << 63


@pytest.fixture()
def hub(engine: Engine, tmp_path: Path) -> Iterator[HubServer]:
    server = HubServer(engine, tmp_path / "hub-data", token_cache_s=1.0)
    server.start()
    yield server
    server.stop()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def record(seq: int, **over: Any) -> dict[str, Any]:
    return {"seq": seq, "kind": "predictions", "items": 1, "created": 1.0, "payload_hex": "00", **over}


def envelope(records: list[Any], **over: Any) -> dict[str, Any]:
    return {"gateway_id": "gw", "first_seq": 1, "last_seq": 10, "records": records, **over}


def deep(n: int) -> str:
    return "[" * n + "]" * n


BAD_TELEMETRY: list[tuple[str, bytes, str]] = [
    ("seq >= 2^63", json.dumps(envelope([record(BIG)], last_seq=BIG)).encode(), "seq"),
    ("items >= 2^63", json.dumps(envelope([record(1, items=BIG)])).encode(), "items"),
    ("NaN created", json.dumps(envelope([record(1, created=math.nan)])).encode(), "created"),
    ("Infinity created", json.dumps(envelope([record(1, created=math.inf)])).encode(), "created"),
    ("created in year 3000", json.dumps(envelope([record(1, created=32503680000.0)])).encode(), "created"),
    ("JSON 42", b"42", "body"),
    ("JSON null", b"null", "body"),
    ("a list", b"[]", "body"),
    ("deep nesting", ('{"gateway_id": "gw", "records": ' + deep(5000) + "}").encode(), "body"),
    ("payload not hex", json.dumps(envelope([record(1, payload_hex="zz")])).encode(), "payload_hex"),
    ("kind with a newline", json.dumps(envelope([record(1, kind="a\nb")])).encode(), "kind"),
    ("seq a string", json.dumps(envelope([record("1")])).encode(), "seq"),
    ("seq a bool", json.dumps(envelope([record(True)])).encode(), "seq"),
    ("seq outside the range", json.dumps(envelope([record(11)])).encode(), "seq"),
    ("seq twice", json.dumps(envelope([record(1), record(1)])).encode(), "seq"),
    ("another gateway", json.dumps(envelope([record(1)], gateway_id="other")).encode(), "gateway_id"),
]


def test_bad_telemetry_is_refused_naming_the_field(hub: HubServer, engine: Engine) -> None:
    token = add_gateway(engine, "gw")
    with httpx.Client(base_url=hub.url, headers=auth(token), timeout=10) as c:
        for what, body, field in BAD_TELEMETRY:
            for encoding in ("gzip", None):
                r = c.post(
                    "/api/v1/gateways/gw/telemetry",
                    content=gzip.compress(body) if encoding else body,
                    headers={"Content-Encoding": encoding} if encoding else {},
                )
                assert r.status_code == 422, (what, encoding, r.status_code, r.text)
                assert field in r.text, (what, r.text)
        not_zlib = c.post(
            "/api/v1/gateways/gw/telemetry",
            content=b"\x1f\x8b\x08\x00garbage",
            headers={"Content-Encoding": "gzip"},
        )
        truncated = c.post(
            "/api/v1/gateways/gw/telemetry",
            headers={"Content-Encoding": "gzip"},
            content=gzip.compress(json.dumps(envelope([record(1)])).encode())[:-6],
        )
        trailing = c.post(
            "/api/v1/gateways/gw/telemetry",
            headers={"Content-Encoding": "gzip"},
            content=gzip.compress(json.dumps(envelope([record(1)])).encode()) + b"more",
        )
        brotli = c.post("/api/v1/gateways/gw/telemetry", content=b"{}", headers={"Content-Encoding": "br"})
    assert not_zlib.status_code == 400 and "gzip" in not_zlib.text
    assert truncated.status_code == 400 and "truncated" in truncated.text
    assert trailing.status_code == 400 and "after the end" in trailing.text
    assert brotli.status_code == 415 and "Content-Encoding" in brotli.text
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Telemetry)) == 0  # nothing stored half-way


def test_bad_status_reports_and_admin_requests(hub: HubServer, engine: Engine) -> None:
    token = add_gateway(engine, "gw", group="press")
    admin = add_admin_token(engine, "alice")
    bad_reports = [
        ({"active": {"since": "yesterday"}}, "since"),
        ({"active": {"since": math.inf}}, "since"),
        ({"rejected": [1, 2]}, "rejected"),
        ({"rejected": "x"}, "rejected"),
        ({"outbox_depth": BIG}, "outbox_depth"),
        ({"outbox_depth": -1}, "outbox_depth"),
        ({"shadow": {"comparison": {"labelled": "many"}}}, "labelled"),
        ({"metrics": {"monitor": {"rolling_accuracy": True}}}, "rolling_accuracy"),
        ({"health": "x" * 100}, "health"),
        ({"extra": json.loads(deep(60))}, "nested deeper"),
        ({"extra": BIG * 4}, "64-bit"),
        ({"extra": "x" * 100_000}, "longer"),
        # several models: the same limits per entry, a name per entry, at most 32, each once
        ({"models": [{"name": f"m{i}"} for i in range(33)]}, "at most 32"),
        ({"models": [{"name": "quality"}, {"name": "quality"}]}, "quality reported twice"),
        ({"models": [{"name": "no spaces"}]}, "name"),
        ({"models": [{"name": "q" * 65}]}, "name"),
        ({"models": [{"active": {"version": "1"}}]}, "name"),
        ({"models": [{"name": "q", "active": {"since": "yesterday"}}]}, "since"),
        ({"models": [{"name": "q", "rejected": "x"}]}, "rejected"),
        ({"models": [{"name": "q", "metrics": {"monitor": {"psi": {"a": "high"}}}}]}, "psi"),
        ({"models": "quality"}, "models"),
    ]
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        for report, field in bad_reports:
            r = c.post("/api/v1/gateways/gw/status", headers=auth(token), content=json.dumps(report))
            assert r.status_code == 422 and field in r.text, (report, r.status_code, r.text[:300])
        for body in (b"42", b"null", b"[1]", ('{"a": ' + deep(3000) + "}").encode(), b'{"updated": NaN}'):
            r = c.post("/api/v1/gateways/gw/status", headers=auth(token), content=body)
            assert 400 <= r.status_code < 500, (body[:40], r.status_code)
        r = c.post("/api/v1/gateways/gw/status", headers=auth(token), content=b"x" * (2 << 20))
        assert r.status_code == 413
        a = auth(admin)
        for q in ("limit=99999999999999999999999", "limit=-5", "limit=0", "limit=abc", "since=nan", "limt=5"):
            r = c.get(f"/api/v1/history?{q}", headers=a)
            assert r.status_code == 422, (q, r.status_code, r.text)
        assert len(c.get("/api/v1/history?limit=5000", headers=a).json()) <= 5000
        deploys = [
            ({"watch_s": math.inf}, "watch_s"),
            ({"min_labels": 1 << 70}, "min_labels"),
            ({"canary_size": 0}, "canary_size"),
            ({"margin": -1}, "margin"),
            ({"to": "../x"}, "to"),
            ({"to": "a\nb"}, "to"),
            ({"strategy": "yolo"}, "strategy"),
            ({"surprise": 1}, "surprise"),
        ]
        for extra, field in deploys:
            body = {"model": "m", "version": "1", "to": "gw", **extra}
            r = c.post(
                "/api/v1/deployments",
                headers=a,
                content=json.dumps(body),
            )
            assert r.status_code == 422 and field in r.text, (extra, r.status_code, r.text[:300])
        r = c.put("/api/v1/config/gw", headers=a, json={"overlay": json.loads(deep(40))})
        assert r.status_code == 422 and "nested" in r.text
        r = c.put("/api/v1/config/group:..", headers=a, json={"overlay": {}})
        assert r.status_code in (404, 422)
        r = c.post("/api/v1/gateways/nobody/status", headers=a, json={})
        assert r.status_code == 404  # an admin reporting for a gateway that does not exist


@pytest.mark.parametrize(
    "bad", ["", "a\nb", "../x", "a/b", "group:x", "x" * 129, ".", "..", "a b", "tab\there", "ü"]
)
def test_gateway_ids_follow_the_documented_pattern(bad: str) -> None:
    with pytest.raises(InvalidName):
        check_gateway_id(bad)


def test_gateways_add_refuses_bad_ids(engine: Engine) -> None:
    for bad in ("", "x\n", "../etc", "group:press"):
        with pytest.raises(InvalidName):
            add_gateway(engine, bad)
    with pytest.raises(InvalidName):
        add_gateway(engine, "ok-1", group="a/b")
    for good in ("line-7", "press_2.a", "A", "x" * 128):
        add_gateway(engine, good)


# -- the telemetry decoder ---------------------------------------------------------------------
records = st.builds(
    StoredRecord,
    seq=st.integers(1, BIG - 1),
    kind=st.sampled_from(["readings", "predictions", "audit"]),
    priority=st.just(1),
    items=st.integers(0, BIG - 1),
    created=st.floats(0, 4_102_444_800.0),
    payload=st.binary(max_size=64),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(records, min_size=1, max_size=20, unique_by=lambda r: r.seq))
def test_decoder_round_trips_what_the_agent_sends(batch: list[StoredRecord]) -> None:
    batch.sort(key=lambda r: r.seq)
    raw = gzip.decompress(batch_body("gw", batch))
    rows = decode_batch(raw, "gw", HubLimits())
    assert [(r["seq"], r["kind"], r["items"], r["created"], r["payload"]) for r in rows] == [
        (r.seq, r.kind, r.items, r.created, r.payload) for r in batch
    ]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.builds(
            lambda recs: json.dumps(envelope(recs)).encode(),
            st.lists(
                st.dictionaries(
                    st.sampled_from(["seq", "kind", "items", "created", "payload_hex", "x"]), json_values
                ),
                max_size=3,
            ),
        ),
    )
)
def test_decoder_refuses_anything_else_cleanly(raw: bytes) -> None:
    """Any bytes: rows, or a LimitError naming the place; never another exception."""
    try:
        rows = decode_batch(raw, "gw", HubLimits())
    except LimitError as exc:
        assert exc.status in (400, 413, 422) and exc.field
        return
    for r in rows:
        assert 1 <= r["seq"] < BIG and isinstance(r["payload"], bytes)


# -- the gateway audit chain -------------------------------------------------------------------
def _chain(n: int) -> list[dict[str, Any]]:
    out, prev = [], GENESIS
    for seq in range(1, n + 1):
        e: dict[str, Any] = {"seq": seq, "at": float(seq), "actor": "agent", "action": "x", "prev": prev}
        e["hash"] = prev = entry_hash(e)
        out.append(e)
    return out


def test_an_audit_gap_waits_for_the_resend_window(engine: Engine) -> None:
    add_gateway(engine, "gw")
    chain = _chain(5)
    t0 = 1000.0
    with Session(engine) as s, s.begin():  # entry 3 is late: the agent resends it at its start
        store_audit(s, "gw", [chain[0], chain[1], chain[3]], window_s=60, now=t0)
    with Session(engine) as s:
        assert audit_chains(s)["gw"]["state"] == "pending"
    with Session(engine) as s, s.begin():
        store_audit(s, "gw", [chain[2], chain[4]], window_s=60, now=t0 + 30)
    with Session(engine) as s:
        assert audit_chains(s)["gw"] == {"state": "ok", "entries": 5, "reason": None}
    # another gateway's entry 2 never comes: broken only after the window, with the reason
    add_gateway(engine, "gw2")
    with Session(engine) as s, s.begin():
        store_audit(s, "gw2", [chain[0], chain[2]], window_s=60, now=t0)
        check_pending_chains(s, 60, now=t0 + 59)
    with Session(engine) as s:
        assert audit_chains(s)["gw2"]["state"] == "pending"
    with Session(engine) as s, s.begin():
        check_pending_chains(s, 60, now=t0 + 61)
    with Session(engine) as s:
        state = audit_chains(s)["gw2"]
        flagged = s.scalars(
            select(AgentAudit).where(AgentAudit.gateway_id == "gw2", AgentAudit.seq == 3)
        ).one()
    assert state["state"] == "broken" and "entry 2 never arrived" in state["reason"]
    assert not flagged.chain_ok
    # an edited entry is broken at once, whatever the window
    edited = dict(_chain(1)[0], action="something else")
    add_gateway(engine, "gw3")
    with Session(engine) as s, s.begin():
        store_audit(s, "gw3", [edited], window_s=3600, now=t0)
    with Session(engine) as s:
        assert "was edited" in (audit_chains(s)["gw3"]["reason"] or "")


def test_training_samples_and_audit_arrive_with_their_record(hub: HubServer, engine: Engine) -> None:
    """One transaction: the record and what is derived from it; garbage inside a record is
    skipped with a log line, the record is still stored once."""
    token = add_gateway(engine, "gw")
    samples = [
        {
            "model": "m",
            "id": f"p{i}",
            "ts": 10.0 + i,
            "inputs": ["a"],
            "x": [1.0],
            "label": "OK",
            "version": "1",
        }
        for i in range(3)
    ]
    samples.append({"model": "m", "id": "bad", "ts": "never"})

    def rec(seq: int, kind: str, payload: bytes) -> StoredRecord:
        return StoredRecord(seq=seq, kind=kind, priority=3, created=time.time(), payload=payload, items=1)

    recs = [
        rec(1, "training_samples", zlib.compress(json.dumps(samples).encode())),
        rec(2, "audit", b"not zlib at all"),
        rec(3, "training_samples", zlib.compress(b"[" * 100 + b"]" * 100)),
    ]
    with httpx.Client(base_url=hub.url, headers={**auth(token), "Content-Encoding": "gzip"}) as c:
        first = c.post("/api/v1/gateways/gw/telemetry", content=batch_body("gw", recs))
        again = c.post("/api/v1/gateways/gw/telemetry", content=batch_body("gw", recs))
    assert first.json() == {"received": 3, "stored": 3, "duplicates": 0}
    assert again.json() == {"received": 3, "stored": 0, "duplicates": 3}
    with Session(engine) as s:
        assert sorted(s.scalars(select(TrainingSample.sample_id))) == ["p0", "p1", "p2"]


def test_the_limiter_is_bounded_and_counts_what_it_suppressed(caplog: pytest.LogCaptureFixture) -> None:
    import logging

    from agent.aio.loglimit import RepeatLimiter
    from hub.ratelimit import warn_limited

    clock = [0.0]
    limiter = RepeatLimiter(period_s=10, max_keys=50, clock=lambda: clock[0])
    logger = logging.getLogger("hub.test")
    for t in (0, 1, 2, 3, 11):
        clock[0] = t
        warn_limited(logger, "k", "refused %s", "x", limiter=limiter)
    lines = [r.getMessage() for r in caplog.records if r.name == "hub.test"]
    assert lines == ["refused x", "refused x (3 more like this suppressed)"]
    for i in range(10_000):
        limiter.admit(f"topic-{i}")
    assert len(limiter) == 50  # a flood of distinct keys cannot grow it


def test_a_flood_of_unknown_tokens_is_a_few_log_lines(
    hub: HubServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hub.ratelimit as ratelimit
    from agent.aio.loglimit import RepeatLimiter

    # process-wide: another test's hub may have logged one within the period
    monkeypatch.setattr(ratelimit, "LIMITER", RepeatLimiter())
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        codes = {
            c.get("/api/v1/gateways/gw/desired", headers=auth(f"guess-{i}")).status_code for i in range(300)
        }
    assert codes == {401}
    lines = [r for r in caplog.records if "unknown or revoked token" in r.getMessage()]
    assert 1 <= len(lines) <= 2 and not any("guess-" in r.getMessage() for r in caplog.records)


def test_more_attacks_on_paths_and_headers(hub: HubServer, engine: Engine) -> None:
    token = add_gateway(engine, "gw")
    admin = add_admin_token(engine, "root")
    (hub.data / "trusted-keys").mkdir(parents=True, exist_ok=True)
    generate_keypair(hub.data / "k.pem", hub.data / "trusted-keys" / "k.pub")
    with httpx.Client(base_url=hub.url, timeout=10) as c:
        assert c.get("/api/v1/bundles/" + "A" * 64, headers=auth(token)).status_code == 422  # not a sha
        assert c.get("/api/v1/bundles/" + "0" * 64, headers=auth(token)).status_code == 404
        assert c.get("/api/v1/bundles/..%2F..%2Fetc%2Fpasswd", headers=auth(admin)).status_code in (404, 422)
        assert c.get("/api/v1/gateways/gw%0Aevil/desired", headers=auth(admin)).status_code == 422
        assert (
            c.get("/api/v1/gateways/gw/desired", headers={"Authorization": "Basic Zm9vOmJhcg=="}).status_code
            == 401
        )
        r = c.get("/api/v1/models/" + "m" * 129 + "/1/card", headers=auth(admin))
        assert r.status_code == 422
        r = c.get("/api/v1/models/m/1/card?format=pdf", headers=auth(admin))
        assert r.status_code == 422 and "format" in r.text
        r = c.post("/api/v1/models", headers=auth(admin), content=b"\x1f\x8b" + b"\0" * 100)
        assert r.status_code == 422 and "not a readable bundle" in r.text
        r = c.put("/api/v1/config/group:press", headers=auth(admin), json={"overlay": {"gateway_id": "x"}})
        assert r.status_code == 422 and "gateway_id" in r.text
