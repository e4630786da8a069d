"""The hub's history (and audit trail) entries, and who is acting: every admin request and
CLI command runs ``acting_as(NAME)``, so the entries it writes name its token's holder or the
local operator, whatever code path writes them (registry, rollouts, retraining)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

from sqlalchemy.orm import Session

from hub.storage.tables import HistoryEntry

_actor: ContextVar[str] = ContextVar("hub_actor", default="hub")


@contextlib.contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Entries recorded inside name ``actor`` (e.g. 'token:alice', 'cli:bob'); outside, 'hub'."""
    token = _actor.set(actor[:128])
    try:
        yield
    finally:
        _actor.reset(token)


def current_actor() -> str:
    return _actor.get()


def record(s: Session, model: str, version: str, event: str, gateway_id: str | None = None,
           detail: str | None = None, actor: str | None = None) -> None:
    # a report's fields may be null: the entry says "?" rather than failing the request
    s.add(HistoryEntry(at=time.time(), model=str(model or "?")[:128], version=str(version or "?")[:64],
                       event=event[:32],
                       gateway_id=gateway_id[:128] if gateway_id else None,
                       detail=(detail or "")[:2000] or None, actor=(actor or _actor.get())[:128]))
