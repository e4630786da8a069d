"""Bearer tokens: stored as their sha256, never in clear. A gateway token reaches only its own
gateway's resources; an admin token has a holder's name, which the audit trail shows, and is
revoked by name (kept, marked revoked, so the trail still says who held it)."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agent.errors import AgentError
from hub.ids import check_token_name
from hub.storage.history import record
from hub.storage.tables import Token


class TokenError(AgentError):
    """No such token name, or a name already taken (the message says which)."""


@dataclass(frozen=True)
class Holder:
    """Who a valid token belongs to."""
    role: str  # admin | gateway
    gateway_id: str | None = None
    name: str | None = None

    @property
    def actor(self) -> str:
        """How the audit trail names this caller."""
        if self.role == "admin":
            return f"token:{self.name or 'unnamed'}"
        return f"gateway:{self.gateway_id}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def lookup(engine: Engine, token_hash: str) -> Holder | None:
    """The holder of a token that is known and not revoked, else None."""
    with Session(engine) as s:
        t = s.get(Token, token_hash)
        if t is None or t.revoked is not None:
            return None
        return Holder(t.role, t.gateway_id, t.name)


def add_admin_token(engine: Engine, name: str | None = None) -> str:
    """A new admin token for ``name`` (printed once by the caller; stored hashed). Without a
    name (the demo, tests) one is made up: ``admin-<8 hex>``."""
    token = new_token()
    name = check_token_name(name) if name else f"admin-{hash_token(token)[:8]}"
    with Session(engine) as s, s.begin():
        taken = s.scalars(select(Token).where(Token.name == name)).first()
        if taken is not None:
            state = "revoked" if taken.revoked else "in use"
            raise TokenError(f"token name {name} is {state}; choose another name")
        s.add(Token(token_hash=hash_token(token), role="admin", name=name, created=time.time()))
        record(s, "-", "-", "token_created", detail=f"admin token {name}")
    return token


def list_tokens(engine: Engine) -> list[dict[str, Any]]:
    """Admin tokens by name, with when they were made and revoked (never the token)."""
    with Session(engine) as s:
        return [{"name": t.name, "created": t.created, "revoked": t.revoked}
                for t in s.scalars(select(Token).where(Token.role == "admin").order_by(Token.name))]


def revoke_token(engine: Engine, name: str) -> None:
    with Session(engine) as s, s.begin():
        t = s.scalars(select(Token).where(Token.role == "admin", Token.name == name)).first()
        if t is None:
            raise TokenError(f"no admin token named {name} (edge-hub tokens list)")
        if t.revoked is None:
            t.revoked = time.time()
            record(s, "-", "-", "token_revoked", detail=f"admin token {name}")
