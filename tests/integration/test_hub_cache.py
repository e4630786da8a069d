"""The desired-state cache: a change reloads only the targets it names and drops only their
gateways' desired states; an unnamed change (another process) reloads everything."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from hub.cache import DesiredCache
from hub.registry import publish
from hub.rollouts import deploy
from hub.storage import add_gateway


def test_a_change_refreshes_only_what_it_touched(
    engine: Engine, trained: dict[str, Path], tmp_path: Path
) -> None:
    for gw, group in (("a1", "press"), ("a2", "press"), ("b1", "weld")):
        add_gateway(engine, gw, group)
    publish(engine, tmp_path / "data", trained["bundle"], [trained["pub"]])
    cache = DesiredCache(engine)
    before = {gw: cache.get(gw) for gw in ("a1", "a2", "b1")}
    deploy(engine, "moulding-nok", "1.0.0", "group:weld", "immediate")
    cache.changed({"group:weld"})
    assert cache.reloads == 0 and cache.partial_reloads == 1
    assert cache.desired.get("a1") is before["a1"] and cache.desired.get("a2") is before["a2"]  # kept
    assert "b1" not in cache.desired  # dropped, and rebuilt with the deployment:
    doc, etag = cache.get("b1")
    assert doc["model"]["version"] == "1.0.0" and etag != before["b1"][1]
    deploy(engine, "moulding-nok", "1.0.0", "a2", "immediate")
    cache.changed({"a2"})
    assert cache.get("a2")[0]["model"]["version"] == "1.0.0" and cache.get("a1")[0]["model"] is None
    add_gateway(engine, "b2", "weld")  # a new gateway: its group's rollouts come with it
    cache.changed({"b2"})
    assert cache.get("b2")[0]["model"]["version"] == "1.0.0"
    assert cache.get("a1") is before["a1"]
    cache.changed()  # a change made elsewhere: everything
    assert cache.reloads == 1 and cache.desired == {}


def test_an_idle_poll_never_leaves_the_event_loop() -> None:
    """FastAPI runs a plain ``def`` dependency or endpoint in the thread pool: a hop per request
    that cut the idle-poll rate about in half (bench.hub, SQLite). Every dependency of every
    route, and the desired-state endpoint, is a coroutine, and the poll solves two dependencies."""
    import inspect

    from fastapi.dependencies.models import Dependant
    from fastapi.routing import APIRoute

    from hub.api import ROUTERS
    from hub.api.auth import _bearer, own_gateway
    from hub.ids import GATEWAY_ID_PATTERN

    def is_async(call: object) -> bool:
        return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
            type(call).__call__)

    sync: set[str] = set()
    polls = gateway_routes = 0
    for router in ROUTERS:
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            if route.path == "/api/v1/gateways/{gateway_id}/desired":
                assert is_async(route.endpoint)
                # each dependency FastAPI solves costs some 15-25 us, a fifth of an idle
                # poll: the poll has two, OwnGateway and the bearer credentials
                chain, d = [], route.dependant
                while d.dependencies:
                    assert len(d.dependencies) == 1
                    d = d.dependencies[0]
                    chain.append(d.call)
                assert chain == [own_gateway, _bearer]
                polls += 1
            if any(d.call is own_gateway for d in route.dependant.dependencies):
                # own_gateway leaves a malformed id to the route's validation of the path
                (param,) = [p for p in route.dependant.path_params if p.name == "gateway_id"]
                patterns = [getattr(m, "pattern", None) for m in param.field_info.metadata]
                assert GATEWAY_ID_PATTERN in patterns, route.path
                gateway_routes += 1
            todo: list[Dependant] = list(route.dependant.dependencies)
            while todo:
                d = todo.pop()
                todo.extend(d.dependencies)
                if d.call is not None and not is_async(d.call):
                    sync.add(f"{route.path}: {getattr(d.call, '__name__', d.call)}")
    assert polls == 1 and gateway_routes >= 3 and not sync, sorted(sync)
