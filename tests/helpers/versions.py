"""Model versions for lifecycle tests: real ONNX models, and bundles spoiled in the ways a
gateway must refuse (tampered file, tampered manifest, foreign key, failing self-test)."""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np

from agent.models.builder import build_bundle
from agent.models.bundle import sign_bundle, write_manifest
from agent.models.training import train_onnx


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


def cost_pair(root: Path, trained: dict[str, Path]) -> dict[str, Path]:
    """Two real models of the same line: 7.0.0 weighs NOK parts 30 times (it catches nearly every
    NOK part and raises false NOK calls), 7.1.0 is unweighted (right more often, but it misses
    NOK parts 7.0.0 catches): higher accuracy, higher expected cost."""
    table = np.genfromtxt(trained["train"], delimiter=",", skip_header=1, dtype=str)
    x, y = table[:, :-1].astype(np.float32), table[:, -1]
    out = {}
    for version, weights in (("7.0.0", {"NOK": 30.0}), ("7.1.0", None)):
        model = train_onnx(x, y, root / f"cost-{version}.onnx", kind="logistic", class_weight=weights)
        out[version] = root / f"bundle-{version}"
        build_bundle(model, trained["train"], "label", "moulding-nok", version, out[version],
                     holdout_csv=trained["holdout"], positive_class="NOK", signing_key=trained["key"])
    return out


def tar_of(directory: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        tar.add(directory, arcname=directory.name)
    return out


def fragile_model(root: Path, trained: dict[str, Path], version: str) -> Path:
    """A real ONNX model that passes its self-test and fails on the line: it looks its score up
    in a 10-row table by the first input, so training values 0..9 work and process values
    (a barrel temperature of 230) make onnxruntime fail with an out-of-bounds index."""
    import onnx
    from onnx import TensorProto, helper

    names = trained["train"].read_text().splitlines()[0].split(",")[:-1]
    rng = np.random.default_rng(4)
    x = rng.integers(0, 10, size=(400, len(names))).astype(np.float32)
    y = np.where(x[:, 0] >= 5, "NOK", "OK")
    csv = root / "fragile.csv"
    csv.write_text(",".join([*names, "label"]) + "\n" + "\n".join(
        ",".join([*(f"{v:g}" for v in row), lab]) for row, lab in zip(x, y, strict=True)) + "\n")
    table = np.array([[1.0 - i / 10, i / 10] for i in range(10)], dtype=np.float32)
    graph = helper.make_graph(
        [helper.make_node("Slice", ["input", "s0", "s1", "ax"], ["first"]),
         helper.make_node("Squeeze", ["first", "ax"], ["col"]),
         helper.make_node("Cast", ["col"], ["idx"], to=TensorProto.INT64),
         helper.make_node("Gather", ["table", "idx"], ["probabilities"], axis=0)],
        "fragile",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, len(names)])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor("table", TensorProto.FLOAT, [10, 2], table.flatten().tolist()),
         helper.make_tensor("s0", TensorProto.INT64, [1], [0]),
         helper.make_tensor("s1", TensorProto.INT64, [1], [1]),
         helper.make_tensor("ax", TensorProto.INT64, [1], [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    path = root / "fragile.onnx"
    path.write_bytes(model.SerializeToString())
    out = root / f"bundle-{version}"
    build_bundle(path, csv, "label", "moulding-nok", version, out, positive_class="NOK",
                 signing_key=trained["key"])
    return out


def slow_model(root: Path, trained: dict[str, Path], version: str) -> Path:
    """A real, correct but much heavier model (a large random forest): same answers, slower."""
    from skl2onnx import to_onnx
    from sklearn.ensemble import RandomForestClassifier  # the 'train' extra

    table = np.genfromtxt(trained["train"], delimiter=",", skip_header=1, dtype=str)
    x, y = table[:, :-1].astype(np.float32), table[:, -1]
    forest = RandomForestClassifier(n_estimators=600, max_depth=None, random_state=0).fit(x, y)
    onx = to_onnx(forest, x[:1], options={id(forest): {"zipmap": False}}, target_opset=17)
    path = root / "slow.onnx"
    path.write_bytes(onx.SerializeToString())
    out = root / f"bundle-{version}"
    build_bundle(path, trained["train"], "label", "moulding-nok", version, out, positive_class="NOK",
                 signing_key=trained["key"])
    return out
