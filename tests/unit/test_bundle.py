"""Bundles: build from a real model, sign, verify; tampering of any kind is refused."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from agent.cli import main
from agent.config import ModelConfig
from agent.inference.model import load_model
from agent.inference.runtimes import runtime_for_file
from agent.models.builder import build_bundle
from agent.models.bundle import MANIFEST, BundleError, run_self_test, sign_bundle, unpack, verify_bundle


@pytest.fixture()
def bundle(trained: dict[str, Path], tmp_path: Path) -> Path:
    copy = tmp_path / "bundle"
    shutil.copytree(trained["bundle"], copy)
    return copy


def test_manifest_holds_what_governance_needs(bundle: Path, trained: dict[str, Path]) -> None:
    b = verify_bundle(bundle, [trained["pub"]])
    m = b.manifest
    assert [i.name for i in m.inputs][:3] == ["barrel_temp_1", "barrel_temp_2", "barrel_temp_3"]
    assert m.output.kind == "classifier" and m.output.classes == ["NOK", "OK"]
    assert m.output.positive_class == "NOK"
    feat = m.profile["features"]["injection_pressure"]
    assert len(feat["proportions"]) == len(feat["edges"]) + 1  # plus the two overflow bins
    assert abs(sum(feat["proportions"]) - 1.0) < 1e-9
    assert 0.8 < m.metrics["holdout"]["accuracy"] <= 1.0 and m.metrics["holdout"]["in_sample"] is False
    assert m.lineage["training_data"]["rows"] == 1200
    assert len(m.lineage["training_data"]["sha256"]) == 64
    assert len(m.self_test.inputs) == 8
    assert set(m.files) == {"model.onnx"}
    assert b.signed_by is not None


def test_tampered_model_file_is_refused(bundle: Path, trained: dict[str, Path]) -> None:
    with (bundle / "model.onnx").open("r+b") as fh:
        fh.seek(200)
        byte = fh.read(1)
        fh.seek(200)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="does not match its sha256"):
        verify_bundle(bundle, [trained["pub"]])


def test_truncated_model_file_is_refused(bundle: Path, trained: dict[str, Path]) -> None:
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="tampered or truncated"):
        verify_bundle(bundle, [trained["pub"]])


def test_tampered_manifest_breaks_the_signature(bundle: Path, trained: dict[str, Path]) -> None:
    doc = json.loads((bundle / MANIFEST).read_text())
    doc["metrics"]["holdout"]["accuracy"] = 0.999
    (bundle / MANIFEST).write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    with pytest.raises(BundleError, match="does not match any trusted key"):
        verify_bundle(bundle, [trained["pub"]])


def test_wrong_signing_key_is_refused(bundle: Path, trained: dict[str, Path]) -> None:
    sign_bundle(bundle, trained["other_key"])
    with pytest.raises(BundleError, match="does not match any trusted key"):
        verify_bundle(bundle, [trained["pub"]])
    assert verify_bundle(bundle, [trained["pub"], trained["other_pub"]]).signed_by


def test_unsigned_refused_unless_allowed(bundle: Path, trained: dict[str, Path]) -> None:
    (bundle / "manifest.sig").unlink()
    with pytest.raises(BundleError, match="not signed"):
        verify_bundle(bundle, [trained["pub"]])
    assert verify_bundle(bundle, [], allow_unsigned=True).signed_by is None


def test_self_test_failure_is_refused(bundle: Path, trained: dict[str, Path]) -> None:
    doc = json.loads((bundle / MANIFEST).read_text())
    doc["self_test"]["expected_scores"][0] = [0.5, 0.5]
    (bundle / MANIFEST).write_text(json.dumps(doc))
    sign_bundle(bundle, trained["key"])
    b = verify_bundle(bundle, [trained["pub"]])
    runtime = runtime_for_file(b.model_path, len(b.manifest.inputs))
    with pytest.raises(BundleError, match="self-test failed"):
        run_self_test(b, runtime.predict)
    with pytest.raises(BundleError, match="self-test failed"):
        load_model(ModelConfig(bundle=bundle, trusted_keys=[trained["pub"]]), bundle, bundle.parent / "st")


def test_tar_bundle_unpacks_and_loads(bundle: Path, trained: dict[str, Path], tmp_path: Path) -> None:
    archive = tmp_path / "b.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(bundle, arcname="moulding-nok-1.0.0")
    model = load_model(ModelConfig(bundle=archive, trusted_keys=[trained["pub"]]), archive, tmp_path / "st")
    assert model.version == "1.0.0"
    x = np.asarray(model.bundle.manifest.self_test.inputs, dtype=np.float32)
    assert model.predict_matrix(x).scores.shape == (8, 2)


def test_garbage_archive_is_a_clear_error(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 10)
    with pytest.raises(BundleError, match="not a readable bundle archive"):
        unpack(junk, tmp_path)


def test_cli_keygen_build_sign_verify(trained: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    key = tmp_path / "k.pem"
    assert main(["bundle", "keygen", "--out", str(key)]) == 0
    out = tmp_path / "b"
    assert main(["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(trained["train"]),
                 "--label", "label", "--name", "m", "--version", "2", "--out", str(out),
                 "--positive-class", "NOK"]) == 0
    capsys.readouterr()
    assert main(["bundle", "verify", str(out), "--key", str(key) + ".pub"]) == 2
    assert "not signed" in capsys.readouterr().err
    assert main(["bundle", "sign", str(out), "--key", str(key)]) == 0
    assert main(["bundle", "verify", str(out), "--key", str(key) + ".pub"]) == 0
    assert "self-test passed" in capsys.readouterr().out


def test_cli_build_with_bad_label_column(trained: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(trained["train"]),
               "--label", "quality", "--name", "m", "--version", "2", "--out", str(tmp_path / "b")])
    assert rc == 2
    assert "missing column(s) quality" in capsys.readouterr().err


def test_build_rejects_non_numeric_cells(trained: dict[str, Path], tmp_path: Path) -> None:
    lines = trained["train"].read_text().splitlines()
    cells = lines[5].split(",")
    cells[2] = "n/a"
    lines[5] = ",".join(cells)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines))
    with pytest.raises(Exception, match=r"row 6, column 'barrel_temp_3': 'n/a' is not a number"):
        build_bundle(trained["model"], bad, "label", "m", "1", tmp_path / "b")
