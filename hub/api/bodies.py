"""Reading request bodies within the hub's limits.

``BoundedRoute`` is the route class of every router: its requests parse JSON with the hub's
limits (size, nesting depth, 64-bit integers, finite numbers, string lengths) before FastAPI
validates the body model, so a deep or huge document is a 4xx naming the place, never a
RecursionError or a memory spike. ``read_stream`` reads a raw body (telemetry, bundle uploads)
chunk by chunk, decompressing as it goes; a client that hangs up mid-body costs one log line."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.requests import ClientDisconnect

from hub.limits import HubLimits, Inflater, LimitError, parse_json
from hub.ratelimit import warn_limited

log = logging.getLogger(__name__)


def limits_of(request: Request) -> HubLimits:
    limits: HubLimits = request.app.state.hub.limits
    return limits


def refuse(exc: LimitError) -> HTTPException:
    """A limit error as FastAPI's own validation answer: detail names the field."""
    if exc.field and exc.status == 422:
        loc = ["body", *exc.field.split(".")[1:]] if exc.field.startswith("body") else [exc.field]
        return HTTPException(422, [{"loc": loc, "msg": str(exc), "type": "value_error"}])
    return HTTPException(exc.status, str(exc))


class BoundedRequest(Request):
    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            limits = limits_of(self)
            self._body = bytes(await read_stream(self, Inflater(None, limits.max_json_bytes, limits),
                                                 limits.max_json_bytes))
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = parse_json(await self.body(), limits_of(self))
            except LimitError as exc:
                raise refuse(exc) from None
        return self._json


class BoundedRoute(APIRoute):
    """Bodies read within the limits, and query parameters the route does not declare refused
    (a misspelt ``?limt=`` is a 422, not silently ignored)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        known = _query_names(self.dependant)

        async def bounded(request: Request) -> Response:
            # most requests (every poll) have no query string: nothing to parse
            unknown = sorted(set(request.query_params) - known) if request.scope.get("query_string") else []
            if unknown:
                raise HTTPException(422, [{"loc": ["query", unknown[0][:64]], "type": "extra_forbidden",
                                           "msg": "unknown query parameter; see /docs"}])
            return await handler(BoundedRequest(request.scope, request.receive))
        return bounded


def _query_names(dependant: Dependant) -> set[str]:
    names: set[str] = set()
    todo = [dependant]
    while todo:
        d = todo.pop()
        names.update(p.alias for p in d.query_params)
        todo.extend(d.dependencies)
    return names


def _declared_length(request: Request) -> int | None:
    try:
        return int(request.headers.get("content-length", ""))
    except ValueError:
        return None


async def read_stream(request: Request, inflater: Inflater, max_bytes: int,
                      sink: Path | None = None) -> bytearray:
    """The body, at most ``max_bytes`` as sent and the inflater's limit once decompressed;
    with ``sink``, the bytes as sent go to that file instead of memory (bundle uploads)."""
    declared = _declared_length(request)
    if declared is not None and declared > max_bytes:
        raise HTTPException(413, f"body of {declared} bytes is over the limit of {max_bytes}")
    received = 0
    try:
        with (sink.open("wb") if sink else _NoFile()) as fh:
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_bytes:
                    raise HTTPException(413, f"body over the limit of {max_bytes} bytes")
                if sink is not None:
                    fh.write(chunk)
                else:
                    inflater.feed(chunk)
        return inflater.finish() if sink is None else bytearray()
    except LimitError as exc:
        raise refuse(exc) from None
    except ClientDisconnect:
        peer = request.client.host if request.client else "?"
        warn_limited(log, f"cut:{request.url.path}", "%s %s from %s: the client hung up after %d bytes "
                     "of the body; nothing stored", request.method, request.url.path, peer, received)
        raise HTTPException(400, "the body was cut off") from None


class _NoFile:
    def __enter__(self) -> _NoFile:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def write(self, data: bytes) -> None:  # pragma: no cover - never called without a sink
        raise AssertionError(data)
