"""Authentication and scopes as dependencies: ``Caller`` is any valid bearer token, ``Admin``
an admin token, ``OwnGateway`` the gateway named in the path (or an admin). Unknown tokens are
answered 401 and logged through the bounded limiter, never one line each and never the token.

Every one is a coroutine (FastAPI runs a plain ``def`` dependency in the thread pool, a hop per
request), and none takes the hub through ``HubDep`` but from the request: each dependency FastAPI
solves costs some 15-25 us of a request (FastAPI 0.165), against about 100 us for a whole idle
poll. The token is checked in ``caller``, a dependency of ``own_gateway`` rather than a call in
its body: FastAPI solves sub-dependencies before it validates a dependency's own parameters (the
gateway id), so a request without a valid token is a 401 whatever else is wrong with it."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.api.deps import GatewayId, hub_of
from hub.ratelimit import warn_limited
from hub.storage import Holder, hash_token

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_bearer = HTTPBearer(auto_error=False,
                     description="A gateway's token or an admin's (edge-hub tokens create).")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def caller(request: Request, credentials: Credentials) -> Holder:
    hub = hub_of(request)
    if credentials is None or not credentials.credentials:
        raise HTTPException(401, "missing bearer token", headers=_CHALLENGE)
    key = hash_token(credentials.credentials.strip())
    cached, who = hub.tokens.get(key)
    if not cached:
        who = await asyncio.to_thread(hub.tokens.lookup, key)
    if who is None:
        warn_limited(log, "unknown-token", "rejected a request with an unknown or revoked token")
        raise HTTPException(401, "unknown token", headers=_CHALLENGE)
    return who


Caller = Annotated[Holder, Depends(caller)]


async def admin(who: Caller) -> Holder:
    if who.role != "admin":
        warn_limited(log, f"not-admin:{who.gateway_id}", "gateway %s tried an admin request", who.gateway_id)
        raise HTTPException(403, "this request needs an admin token")
    return who


async def own_gateway(gateway_id: GatewayId, who: Caller, request: Request) -> Holder:
    hub = hub_of(request)
    if who.role != "admin" and who.gateway_id != gateway_id:
        warn_limited(log, f"other-gateway:{who.gateway_id}", "gateway %s tried to reach another "
                     "gateway's data", who.gateway_id)
        raise HTTPException(403, "a gateway may only use its own resources")
    if who.role == "admin" and not hub.desired.knows(gateway_id):
        await asyncio.to_thread(hub.desired.changed, {gateway_id})
        if not hub.desired.knows(gateway_id):
            raise HTTPException(404, f"no gateway {gateway_id} (edge-hub gateways add)")
    return who


Admin = Annotated[Holder, Depends(admin)]
OwnGateway = Annotated[Holder, Depends(own_gateway)]
