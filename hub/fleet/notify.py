"""Caches that follow the database: one LISTEN connection per API worker.

Triggers of migration 0004 send a notice on ``edge_hub.<schema>`` for every change of a token,
gateway, deployment or config overlay, from any process (an API worker, a job worker, the
CLI). The listener collects what arrived within ``BATCH_S``, then drops the named tokens from
the token cache and reloads the named targets of the desired-state cache: a revoked token is
refused, and a deployment served, by every worker within a second.

A lost connection is re-made; then everything cached is dropped, since notices sent while it
was away are gone."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable

import psycopg
from psycopg import sql
from sqlalchemy.engine import Engine

from hub.fleet.pg import conninfo, schema_of

log = logging.getLogger(__name__)

BATCH_S = 0.05  # notices of one transaction (a group deploy touches many rows) arrive together
RECONNECT_S = 1.0


def channel(schema: str) -> str:
    return f"edge_hub.{schema}"


class ChangeListener:
    """Calls ``forget_token(hash)`` and ``changed(targets)`` (None: everything) as notices come."""

    def __init__(self, engine: Engine, forget_token: Callable[[str | None], None],
                 changed: Callable[[Iterable[str] | None], None]) -> None:
        self.engine, self.forget_token, self.changed = engine, forget_token, changed
        self.channel = channel(schema_of(engine))
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="hub-listen")
        self.notices = 0  # for tests and metrics

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            log.warning("LISTEN %s not ready after %.0f s; caches follow the periodic reload",
                        self.channel, timeout_s)

    @property
    def ready(self) -> bool:
        """Listening (since the first connection; a later reconnect drops every cached thing)."""
        return self._ready.is_set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self.engine), autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    if not first:  # notices sent while away are lost: drop every cached thing
                        self.forget_token(None)
                        self.changed(None)
                    first = False
                    self._ready.set()
                    self._listen(conn)
            except psycopg.Error as exc:
                if self._stop.is_set():
                    return
                log.warning("LISTEN %s: %s; again in %.0f s", self.channel,
                            str(exc).splitlines()[0] if str(exc) else type(exc).__name__, RECONNECT_S)
                self._stop.wait(RECONNECT_S)

    def _listen(self, conn: psycopg.Connection) -> None:
        while not self._stop.is_set():
            tokens: set[str] = set()
            targets: set[str] = set()
            first = list(conn.notifies(timeout=0.5, stop_after=1))
            if not first:
                continue
            # the rest of that transaction's notices (and any close behind) in one reload
            for note in [*first, *conn.notifies(timeout=BATCH_S)]:
                try:
                    body = json.loads(note.payload)
                except ValueError:
                    continue
                if body.get("token"):
                    tokens.add(str(body["token"]))
                if body.get("target"):
                    targets.add(str(body["target"]))
                self.notices += 1
            self._apply(tokens, targets)

    def _apply(self, tokens: set[str], targets: set[str]) -> None:
        for token in tokens:
            self.forget_token(token)
        if targets:
            try:
                self.changed(targets)
            except Exception:  # a reload that failed (database away): reload all next time
                log.exception("reloading %s after a notice failed; the periodic reload follows",
                              sorted(targets)[:5])
