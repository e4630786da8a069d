"""kill -9 of the agent between the fsync of an audit entry and the outbox flush that would
have carried it: after a restart the hub holds the whole chain, every entry verified, none
flagged broken (the agent re-sends from the log what the outbox never got)."""

from __future__ import annotations

import json
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from agent.store.audit import AuditLog
from agent.store.outbox import NewRecord, Outbox, Priority
from hub.server import HubServer
from hub.storage import AgentAudit, add_gateway, migrate


def _wait(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _start(config: dict[str, Any], path: Path) -> subprocess.Popen[bytes]:
    path.write_text(yaml.safe_dump(config))
    exe = shutil.which("edge-agent") or str(Path(sys.executable).parent / "edge-agent")
    return subprocess.Popen([exe, "run", "--config", str(path)], stderr=subprocess.PIPE)


def _outbox_audit_records(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT COUNT(*) FROM records WHERE kind='audit'").fetchone()[0])
    finally:
        conn.close()


def test_kill_between_audit_fsync_and_flush_loses_nothing_at_the_hub(
        tmp_path: Path, trained: dict[str, Path], broker: Any) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'hub.db'}")
    migrate(engine)
    hub = HubServer(engine, tmp_path / "hub-data", keys=[trained["pub"]])
    hub.start()
    try:
        token = add_gateway(engine, "gw-kill")
        state = tmp_path / "state"
        config = {
            "gateway_id": "gw-kill", "state_dir": str(state), "health": {"enabled": False},
            "sources": [{"type": "mqtt", "name": "m", "broker": {"host": "127.0.0.1", "port": broker.port},
                         "topics": [{"topic": "x/y", "tags": [{"tag": "t"}]}]}],
            "model": {"bundle": str(trained["bundle"]), "trusted_keys": [str(trained["pub"])]},
            # a flush only every minute: the kill lands after the audit fsync, before the flush
            "outbox": {"flush_interval_s": 60},
            "hub": {"url": hub.url, "token": token, "upload_interval_s": 0.1, "poll_interval_s": 0.2,
                    "report_interval_s": 0.3, "reconnect": {"initial_s": 0.1, "max_s": 0.3}},
        }
        log = AuditLog(state / "audit.log")
        first = _start(config, tmp_path / "agent.yaml")
        try:
            _wait(lambda: (state / "audit.log").exists() and log.verify()[0] >= 1, 30,
                  "the activation's audit entry on disk")
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        written = log.verify()[0]
        assert written >= 1 and log.verify()[1] is None
        assert _outbox_audit_records(state / "outbox.db") == 0  # the copy the kill lost
        with Session(engine) as s:
            assert s.scalars(select(AgentAudit)).first() is None

        config["outbox"] = {"flush_interval_s": 0.1}
        second = _start(config, tmp_path / "agent.yaml")
        try:
            def chain_at_hub() -> bool:
                with Session(engine) as s:
                    rows = s.scalars(select(AgentAudit).where(AgentAudit.gateway_id == "gw-kill")
                                     .order_by(AgentAudit.seq)).all()
                    return [r.seq for r in rows] == [e["seq"] for e in log.export()] and bool(rows)
            _wait(chain_at_hub, 30, "the whole audit chain at the hub")
        finally:
            second.terminate()
            err = second.communicate(timeout=20)[1].decode()
        assert "Traceback" not in err
        with Session(engine) as s:
            rows = s.scalars(select(AgentAudit).where(AgentAudit.gateway_id == "gw-kill")
                             .order_by(AgentAudit.seq)).all()
            assert [r.seq for r in rows][: written] == list(range(1, written + 1))
            assert all(r.chain_ok for r in rows), [(r.seq, r.chain_ok) for r in rows]
            assert rows[0].entry["action"] == "model_activated"
    finally:
        hub.stop()
        engine.dispose()


def test_catch_up_sends_only_what_the_outbox_never_got(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.log")
    entries = [log.append("agent", "x", str(i)) for i in range(5)]
    box = Outbox(tmp_path / "o.db", 1 << 30)
    # the flusher handed 1..3 over; 4 and 5 were fsynced, then the process died
    from agent.store.codec import decode_json, encode_json

    box.append([NewRecord("audit", Priority.EVENTS, encode_json(entries[:3]), 3, 3)])
    assert box.audit_mark() == 3
    assert box.catch_up_audit(list(log.export())) == 2
    assert box.catch_up_audit(list(log.export())) == 0  # a second start sends nothing again
    audit = [r for r in box.peek() if r.kind == "audit"]
    assert [[e["seq"] for e in decode_json(r.payload)] for r in audit] == [[1, 2, 3], [4, 5]]
    box.close()
    assert json.loads((tmp_path / "audit.log").read_text().splitlines()[-1])["seq"] == 5
