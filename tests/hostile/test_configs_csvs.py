"""Hostile configs (check-config) and CSVs (replay, bundle build): exit 2 and one line naming
the place and the fix, never a traceback; and hypothesis properties of the loader and the
CSV reader (any bytes: a config or a ConfigError, a table or a CsvError)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import string
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import load_config, parse_config
from agent.errors import ConfigError, CsvError
from agent.ingest.csvio import read_table

GOOD = """gateway_id: gw-1
state_dir: STATE
sources:
  - type: mqtt
    name: m
    broker: {host: 127.0.0.1, port: 1883}
    topics: [{topic: a/b, tags: [{tag: t}]}]
"""


def _nested_block(depth: int) -> str:
    return "x:\n" + "".join(" " * i + "k:\n" for i in range(1, depth))


def _alias_bomb() -> str:
    text = "a: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        text += f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]\n"
    return text


CONFIGS: dict[str, tuple[bytes, str]] = {
    "binary": (bytes(range(256)) * 20, "binary data"),
    "latin-1": (GOOD.replace("gw-1", "gw-\u00e9").encode("latin-1"), "is not UTF-8"),
    "windows-1252 quote": (GOOD.encode() + b"# \x93quoted\x94\n", "is not UTF-8"),
    "utf-16": (GOOD.encode("utf-16"), "UTF-16"),
    "utf-16-be": (b"\xfe\xff" + GOOD.encode("utf-16-be"), "UTF-16"),
    "utf-32": (GOOD.encode("utf-32"), "UTF-32"),
    "duplicate key": (GOOD.encode() + b"gateway_id: gw-2\n", "duplicate key 'gateway_id'"),
    "duplicate nested key": (GOOD.replace("port: 1883}", "port: 1883, host: x}").encode(),
                             "duplicate key 'host'"),
    "port: true": (GOOD.replace("port: 1883", "port: true").encode(),
                   "sources[0].broker.port: expected a number"),
    "port as text": (GOOD.replace("port: 1883", 'port: "1883"').encode(), "sources[0].broker.port"),
    "1e400": (GOOD.encode() + b"features: {period_s: 1.0e+400}\n", "features.period_s: must be a finite"),
    "1e400 text": (GOOD.encode() + b"features: {period_s: 1e400}\n", "features.period_s"),
    ".nan": (GOOD.encode() + b"features: {period_s: .nan}\n", "features.period_s: must be a finite"),
    "-.inf": (GOOD.encode() + b"outbox: {flush_interval_s: -.inf}\n", "outbox.flush_interval_s"),
    "reading_queue 1e21": (GOOD.encode() + b"reading_queue: 1e21\n", "reading_queue"),
    "reading_queue 10^21": (GOOD.encode() + b"reading_queue: 1000000000000000000000\n", "reading_queue"),
    "int beyond 64 bits": (GOOD.encode() + b"outbox: {disk_budget_bytes: 99999999999999999999999}\n",
                           "outbox.disk_budget_bytes: must fit in 64 bits"),
    "5 MB gateway_id": (GOOD.replace("gw-1", "a" * 5_000_000).encode(), "gateway_id: 5000000 characters"),
    "gateway id with newline": (GOOD.replace("gw-1", '"gw\\n1"').encode(), "gateway_id"),
    "gateway id ..": (GOOD.replace("gw-1", '".."').encode(), "gateway_id"),
    "gateway id group:": (GOOD.replace("gw-1", '"group:x"').encode(), "gateway_id"),
    "5 MB topic": (GOOD.replace("a/b", "t" * 5_000_000).encode(), "sources[0].topics[0].topic"),
    "huge key": (GOOD.encode() + ("k" * 100_000 + ": 1\n").encode(), "not valid YAML"),
    "long key": (GOOD.encode() + ("k" * 1000 + ": 1\n").encode(), "'kkkkkkkkkk"),
    "key with newline": (GOOD.encode() + b'"a\\nb": 1\n', "'a\\nb': unknown setting"),
    "deep flow": (GOOD.encode() + b"x: " + b"[" * 5000 + b"]" * 5000 + b"\n", "nested deeper than 64"),
    "deep block": (GOOD.encode() + _nested_block(5000).encode()[:4 << 20], "nested deeper than 64"),
    "alias bomb": (_alias_bomb().encode(), "aliases are expanded"),
    "python tag": (GOOD.encode() + b"x: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
    "top level list": (b"- a\n- b\n", "(top level): expected a mapping"),
    "empty": (b"", "(top level): expected a mapping"),
    "tab indentation": (GOOD.replace("  - type", "\t- type").encode(), "not valid YAML"),
    "control character": (GOOD.encode() + b"x: \x07\n", "not valid YAML"),
    "complex key": (GOOD.encode() + b"? [a, b]\n: 1\n", "unhashable key"),
    "17 MB file": (b"#" * (17 << 20), "larger than 16 MiB"),
}


def _cli(args: list[str]) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("edge-agent") or str(Path(sys.executable).parent / "edge-agent")
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", sorted(CONFIGS))
def test_hostile_config_exits_2_with_one_line_naming_the_place(case: str, tmp_path: Path) -> None:
    data, expected = CONFIGS[case]
    path = tmp_path / "agent.yaml"
    path.write_bytes(data.replace(b"STATE", str(tmp_path / "state").encode()))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    problems = info.value.problems
    assert any(expected in p for p in problems), problems
    assert all("\n" not in p and len(p) < 400 for p in problems), problems
    assert not (tmp_path / "state").exists()


def test_check_config_on_hostile_files_never_prints_a_traceback(tmp_path: Path) -> None:
    """The command itself, as an operator runs it (a few of the corpus, one process each)."""
    for case in ("binary", "utf-16", "deep flow", "port: true", "alias bomb"):
        path = tmp_path / f"{case}.yaml"
        path.write_bytes(CONFIGS[case][0].replace(b"STATE", str(tmp_path).encode()))
        done = _cli(["check-config", "--schema-only", str(path)])
        assert done.returncode == 2, (case, done.stderr)
        assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, (case, done.stderr)


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                         st.text(max_size=20), st.just("1e400"), st.just(".inf"))
yaml_values = st.recursive(yaml_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)), max_leaves=12)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(["gateway_id", "sources", "features", "outbox", "model", "hub",
                                        "reading_queue", "health", "limits", "labels", "x"]),
                       yaml_values, max_size=6))
def test_any_settings_give_a_config_or_config_errors(data: dict[str, Any]) -> None:
    try:
        parse_config(data)
    except ConfigError as exc:
        assert exc.problems and all(isinstance(p, str) and "\n" not in p for p in exc.problems)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400) | st.text(max_size=400).map(str.encode))
def test_any_file_gives_a_config_or_config_errors(tmp_path_factory: pytest.TempPathFactory,
                                                   raw: bytes) -> None:
    path = tmp_path_factory.mktemp("cfg") / "agent.yaml"
    path.write_bytes(GOOD.encode() + raw)
    try:
        load_config(path)
    except ConfigError as exc:
        assert exc.problems and all("\n" not in p for p in exc.problems)


# -- CSV ----------------------------------------------------------------------------------------

HEADER = "timestamp,barrel_temp_1,label"


def _csv(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode()


CSVS: dict[str, tuple[bytes, str]] = {
    "header only": (_csv([]), "a header and 0 data rows"),
    "empty": (b"", "the file is empty"),
    "field over 128 KiB": (_csv(["1,2,OK", f"2,{'9' * (200 << 10)},OK"]),
                           "row 3, column 2 'barrel_temp_1': a cell longer than 128 KiB"),
    "nan timestamp": (_csv(["1,2,OK", "nan,2,OK"]), "row 3, column 'timestamp': 'nan' is not a time"),
    "inf timestamp": (_csv(["1,2,OK", "inf,2,OK"]), "row 3, column 'timestamp'"),
    "unicode digits": (_csv(["1,2,OK", "2,\u0661\u0662,OK"]),
                       "row 3, column 'barrel_temp_1': '\u0661\u0662' has non-ASCII digits"),
    "nan value": (_csv(["1,nan,OK"]), "row 2, column 'barrel_temp_1': value is not finite"),
    "1e400 value": (_csv(["1,1e400,OK"]), "row 2, column 'barrel_temp_1': value is not finite"),
    "ragged": (_csv(["1,2,OK", "2,3"]), "row 3: 2 cells, the header has 3"),
    "row after a blank line": (_csv(["1,2,OK", "", "x,2,OK"]), "row 4, column 'timestamp'"),
    "utf-16": ("\n".join([HEADER, "1,2,OK"]).encode("utf-16"), "UTF-16"),
    "latin-1": (_csv(["1,2,\u00e9"]).decode().encode("latin-1"), "row 2: byte 0xe9 is not UTF-8"),
    "NUL byte": (_csv(["1,2\x00,OK"]), "row 2"),
    "empty column name": (b"timestamp,,label\n1,2,OK\n", "row 1, column 2: empty column name"),
    "repeated column": (b"timestamp,label,label\n1,2,OK\n", "repeated column names"),
}


@pytest.mark.parametrize("case", sorted(CSVS))
def test_hostile_csv_is_refused_with_row_and_column(case: str, tmp_path: Path) -> None:
    data, expected = CSVS[case]
    path = tmp_path / "data.csv"
    path.write_bytes(data)
    with pytest.raises(CsvError) as info:
        table = read_table(path)
        table.timestamps("timestamp")
        table.numeric("barrel_temp_1")
    assert expected in str(info.value), str(info.value)
    assert "\n" not in str(info.value)


def test_blank_label_in_a_training_csv_stops_bundle_build(tmp_path: Path, trained: dict[str, Path]) -> None:
    lines = trained["train"].read_text().splitlines()
    header, rows = lines[0], lines[1:]
    rows[4] = rows[4].rsplit(",", 1)[0] + ","
    bad = tmp_path / "train.csv"
    bad.write_text("\n".join([header, *rows]) + "\n")
    column = header.split(",").index("label") + 1
    done = _cli(["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(bad),
                 "--label", "label", "--name", "m", "--version", "1", "--out", str(tmp_path / "out")])
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "row 6, column 'label': empty value" in done.stderr, (column, done.stderr)
    header_only = tmp_path / "header.csv"
    header_only.write_text(header + "\n")
    done = _cli(["bundle", "build", "--model", str(trained["model"]), "--train-csv", str(header_only),
                 "--label", "label", "--name", "m", "--version", "1", "--out", str(tmp_path / "out2")])
    assert done.returncode == 2 and "a header and 0 data rows" in done.stderr, done.stderr


cells = st.text(alphabet=string.printable + "\u0661\uff11\u00e9\"", max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=4), max_size=8) | st.binary(max_size=300).map(
    lambda b: [[b.decode("latin-1")]]))
def test_any_csv_gives_a_table_or_a_csv_error(tmp_path_factory: pytest.TempPathFactory,
                                              rows: list[list[str]]) -> None:
    buf = io.StringIO()
    csv.writer(buf).writerows(rows)
    path = tmp_path_factory.mktemp("csv") / "t.csv"
    path.write_text(buf.getvalue())
    try:
        table = read_table(path, min_rows=0)
    except CsvError as exc:
        assert "\n" not in str(exc)
        return
    for name in table.columns:
        try:
            values = table.numeric(name, allow_blank=True)
        except CsvError as exc:
            assert "row " in str(exc) and f"column '{name[:60]}'" in str(exc)
            continue
        assert all(v != v or abs(v) < float("inf") for v in values)  # finite or blank (NaN)
    assert table.rows == len(table.row_numbers)
    json.dumps(table.row_numbers)
    yaml.safe_dump(table.columns)
