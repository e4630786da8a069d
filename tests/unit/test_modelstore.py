"""The model store on disk and the side-by-side comparison, with real bundles."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest

from agent.errors import BundleError
from agent.models.comparison import Comparison
from agent.models.scoring import CostMatrix
from agent.models.store import ModelStore
from tests.helpers.versions import variant


def test_install_keeps_verified_versions_and_prunes_to_n(tmp_path: Path, trained: dict[str, Path]) -> None:
    store = ModelStore(tmp_path, keep=3)
    shas = []
    for i in range(5):
        bundle = store.install(variant(trained["bundle"], f"1.{i}", tmp_path / f"src{i}", trained["key"]),
                               [trained["pub"]], allow_unsigned=False)
        assert bundle.path == store.path(bundle.sha256) and store.has(bundle.sha256)
        store.note(bundle.sha256, "moulding-nok", f"1.{i}", "activated", "test")
        store.state.previous, store.state.active = store.state.active, bundle.sha256
        shas.append(bundle.sha256)
    store.save()
    old = time.time() - 3600  # installed long ago: not a pending operator import
    for sha in shas:
        os.utime(store.path(sha), (old, old))
    removed = store.prune()
    assert sorted(removed) == sorted(shas[:2])  # the two oldest go; active, previous and one more stay
    assert all(store.has(s) for s in shas[2:])
    assert ModelStore(tmp_path).state.active == shas[-1]  # the state survives a restart
    assert store.find("1.4") == shas[-1] and store.find(shas[3][:10]) == shas[3]
    assert not list(store.staging.iterdir())  # staging is left clean


def test_refused_bundle_leaves_nothing_behind(tmp_path: Path, trained: dict[str, Path]) -> None:
    store = ModelStore(tmp_path)
    with pytest.raises(BundleError, match="signature does not match"):
        store.install(trained["bundle"], [trained["other_pub"]], allow_unsigned=False)
    with pytest.raises(BundleError, match="is not the"):  # the hub said another manifest
        store.install(trained["bundle"], [trained["pub"]], False, expect_sha256="0" * 64)
    assert [p.name for p in store.root.iterdir()] == [] and not list(store.staging.iterdir())


def test_unreadable_state_file_is_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "state.json").write_text("{not json")
    store = ModelStore(tmp_path)
    assert store.state.active is None
    store.request("a" * 64, "tester", "why", action="rollback")
    assert json.loads((store.root / "request.json").read_text())["action"] == "rollback"
    assert store.take_request() is not None and store.take_request() is None


def test_comparison_counts_errors_on_the_same_labelled_samples() -> None:
    cmp = Comparison(["NOK", "OK"], CostMatrix(("NOK", "OK"), "NOK"))
    ids = [str(i) for i in range(100)]
    truth = np.array([i % 2 for i in range(100)], dtype=float)
    candidate = truth.copy()
    candidate[:30] = 1 - candidate[:30]  # wrong on 30 parts
    cmp.record(ids, truth.copy(), candidate, 0.001, 0.004)
    for sid, t in zip(ids, truth, strict=True):
        assert cmp.on_label(sid, ["NOK", "OK"][int(t)])
    assert not cmp.on_label("unknown", "OK") and not cmp.on_label("5", "MAYBE")
    f = cmp.figures()
    assert f["labelled"] == 100 and f["active_accuracy"] == 1.0 and f["candidate_accuracy"] == 0.7
    # 15 NOK missed (10 each) and 15 false NOK (1 each) on 100 parts
    assert f["candidate_cost_per_part"] == 1.65 and f["active_cost_per_part"] == 0.0
    assert f["candidate_recall"] == {"NOK": 0.7, "OK": 0.7}
    assert np.asarray(f["paired_counts"]).sum() == 100
    assert cmp.candidate_worse(0.05) and not cmp.candidate_worse(2.0)
    assert cmp.p99() == pytest.approx((0.001, 0.004))
    assert f["agreement"] == 0.7


def test_a_small_difference_on_few_parts_is_not_called_worse() -> None:
    """3 more false NOK calls on 30 parts is within noise: the paired test keeps the new version."""
    cmp = Comparison(["NOK", "OK"], CostMatrix(("NOK", "OK"), "NOK"))
    ids = [str(i) for i in range(30)]
    truth = np.ones(30)
    active, candidate = truth.copy(), truth.copy()
    active[:2] = 0
    candidate[2:7] = 0
    cmp.record(ids, active, candidate, 0.001, 0.001)
    for sid in ids:
        cmp.on_label(sid, "OK")
    test = cmp.paired()
    assert test is not None and test.difference == pytest.approx(0.1)  # worse by the margin...
    assert test.p_higher > 0.05  # ...but not credibly: 5 against 2 discordant parts
    assert not cmp.candidate_worse(0.05, significance=0.05)
    assert cmp.candidate_worse(0.05, significance=1.0)
