"""Model versions for lifecycle tests: real ONNX models, and bundles spoiled in the ways a
gateway must refuse (tampered file, tampered manifest, foreign key, failing self-test)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

from agent.bundle import sign_bundle, write_manifest
from agent.bundle_build import build_bundle
from agent.training import train_onnx


def variant(bundle: Path, version: str, out: Path, key: Path, self_test_off: bool = False) -> Path:
    """The same model under another version (a distinct, validly signed bundle)."""
    shutil.copytree(bundle, out)
    (out / "manifest.sig").unlink(missing_ok=True)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["version"] = version
    if self_test_off:  # expected outputs the model does not produce: the self-test must fail
        manifest["self_test"]["expected_scores"] = [[1.0 - a for a in row]
                                                    for row in manifest["self_test"]["expected_scores"]]
    write_manifest(out, manifest)
    sign_bundle(out, key)
    return out


def worse_model(root: Path, trained: dict[str, Path], version: str) -> Path:
    """A real model trained on inverted labels: valid, signed, and wrong far more often."""
    lines = trained["train"].read_text().splitlines()
    header, rows = lines[0], lines[1:]
    labels = ["OK" if r.rsplit(",", 1)[1] == "NOK" else "NOK" for r in rows]
    csv = root / "inverted.csv"
    csv.write_text("\n".join([header] + [r.rsplit(",", 1)[0] + "," + lab
                                          for r, lab in zip(rows, labels, strict=True)]) + "\n")
    table = np.genfromtxt(csv, delimiter=",", skip_header=1, dtype=str)
    x = table[:, :-1].astype(np.float32)
    model = train_onnx(x, table[:, -1], root / "worse.onnx", kind="rf", seed=5)
    out = root / f"bundle-{version}"
    build_bundle(model, csv, "label", "moulding-nok", version, out, positive_class="NOK",
                 signing_key=trained["key"])
    return out


def tar_of(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        tar.add(directory, arcname=directory.name)
    return out
