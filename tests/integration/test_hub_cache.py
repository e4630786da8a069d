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
