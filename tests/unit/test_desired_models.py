"""The desired state of several models: its shape is checked before it is acted on, and each
slot takes its own entry (the legacy top level only where the contract says so)."""

from __future__ import annotations

from typing import Any

import pytest

from agent.hublink.desired import DownloadError, check_desired, desired_for

SHA = "b" * 64


def ref(name: str) -> dict[str, Any]:
    return {"sha256": SHA, "url": f"/b/{name}.tar", "name": name, "version": "1"}


@pytest.mark.parametrize(("models", "where"), [
    ([{"model": None}], "models"),
    ({"quality": {"model": {"sha256": "nope", "url": "/x"}}}, "models.quality.model.sha256"),
    ({"quality": "latest"}, "models.quality"),
])
def test_malformed_models_are_refused_naming_the_place(models: Any, where: str) -> None:
    with pytest.raises(DownloadError, match=f"malformed at {where}"):
        check_desired({"models": models})


def test_each_slot_takes_its_own_entry() -> None:
    doc = {"models": {"quality": {"model": ref("quality")}}, "model": ref("quality")}
    assert desired_for(doc, "quality", False, 2) == {"model": ref("quality")}
    assert desired_for(doc, "cycle", False, 2) is None  # absent: keeps what it runs
    assert desired_for(doc, "cycle", False, 1) is None  # a named one-model agent too
    assert desired_for(doc, "default", True, 1) is doc  # the shorthand before its bundle is known


def test_an_old_hub_speaks_for_one_model_only() -> None:
    old = {"model": ref("cycle"), "shadow": None}
    assert desired_for(old, "quality", True, 1) is old  # a one-model agent: as before
    assert desired_for(old, "cycle", False, 2) is old
    assert desired_for(old, "quality", False, 2) is None
