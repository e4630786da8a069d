"""Authentication and scopes as dependencies: ``Caller`` is any valid bearer token, ``Admin``
an admin token, ``OwnGateway`` the gateway named in the path (or an admin). Unknown tokens are
answered 401 and logged through the bounded limiter, never one line each and never the token.

Every one is a coroutine (FastAPI runs a plain ``def`` dependency in the thread pool, a hop per
request), and none takes the hub through ``HubDep`` but from the request: each dependency FastAPI
solves costs some 15-25 us of a request (FastAPI 0.165), against about 100 us for a whole idle
poll. ``own_gateway`` checks the token itself and reads the gateway id from the path, so the
poll solves two; it checks the token before anything else (a request without a valid one is a
401 whatever else is wrong with it) and leaves a malformed id to the path's validation (422)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hub.api.deps import hub_of
from hub.context import HubContext
from hub.ids import GATEWAY_ID, GATEWAY_ID_MAX
from hub.ratelimit import warn_limited
from hub.storage import Holder, hash_token

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_bearer = HTTPBearer(auto_error=False,
                     description="A gateway's token or an admin's (edge-hub tokens create).")


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def caller(request: Request, credentials: Credentials) -> Holder:
    return await _holder(hub_of(request), credentials)


async def _holder(hub: HubContext, credentials: HTTPAuthorizationCredentials | None) -> Holder:
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


async def own_gateway(request: Request, credentials: Credentials) -> Holder:
    """The token first (401), then, for an id the path's validation accepts, the scope (403) and
    an admin's unknown gateway (404); a malformed id is left to that validation (422), which
    FastAPI does after this (every route with OwnGateway declares ``gateway_id: GatewayId``; a
    test holds them to it). The id is read from the path, not declared as a parameter here, and
    the token checked here, not through Caller: two dependencies fewer on every poll, and the
    order of the answers as when they were dependencies of their own."""
    hub = hub_of(request)
    who = await _holder(hub, credentials)
    gateway_id: str = request.path_params["gateway_id"]  # no such path: a server error, never a pass
    if len(gateway_id) > GATEWAY_ID_MAX or not GATEWAY_ID.match(gateway_id):
        return who
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
