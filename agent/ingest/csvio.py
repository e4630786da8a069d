"""Numeric CSV reading with errors that name the row and the column."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import CsvError


@dataclass(frozen=True)
class Table:
    path: Path
    columns: list[str]
    data: dict[str, list[str]]  # raw text per column, so callers decide what may be blank
    sha256: str

    @property
    def rows(self) -> int:
        return len(next(iter(self.data.values()), []))

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.data]
        if missing:
            raise CsvError(f"{self.path}: missing column(s) {', '.join(missing)}; "
                           f"the header has {', '.join(self.columns)}")

    def numeric(self, name: str, allow_blank: bool = False) -> np.ndarray:
        """Column as float64; blank cells become NaN only when allowed."""
        self.require([name])
        out = np.empty(self.rows, dtype=np.float64)
        for i, cell in enumerate(self.data[name]):
            text = cell.strip()
            if not text:
                if allow_blank:
                    out[i] = np.nan
                    continue
                raise CsvError(f"{self.path}: row {i + 2}, column '{name}': empty value")
            try:
                out[i] = float(text)
            except ValueError:
                raise CsvError(f"{self.path}: row {i + 2}, column '{name}': "
                               f"'{text[:40]}' is not a number") from None
            if not np.isfinite(out[i]):
                raise CsvError(f"{self.path}: row {i + 2}, column '{name}': value is not finite")
        return out


def read_table(path: Path) -> Table:
    """Read a CSV with a header row. Row numbers in errors count the header as row 1."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise CsvError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    reader = csv.reader(text.splitlines())
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise CsvError(f"{path}: the file is empty; it needs a header row") from None
    if len(set(header)) != len(header):
        raise CsvError(f"{path}: row 1: repeated column names in the header")
    data: dict[str, list[str]] = {h: [] for h in header}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise CsvError(f"{path}: row {lineno}: {len(row)} cells, the header has {len(header)}")
        for name, cell in zip(header, row, strict=True):
            data[name].append(cell)
    return Table(path, header, data, hashlib.sha256(raw).hexdigest())
