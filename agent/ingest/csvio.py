"""CSV reading for the offline tools (replay, bundle build, the hub's evaluation) with errors
that name the row and the column and say what to fix.

Rows are numbered as a spreadsheet shows them: the header is row 1 and blank lines count.
Refused: a file that is not UTF-8 text, larger than ``max_bytes``, a field longer than 128 KiB,
a header without data rows, empty or repeated column names, ragged rows; and, when a column is
read, numbers that are not plain ASCII decimals, non-finite values and blank cells (unless the
caller allows them), and timestamps that are not ISO 8601 or finite epoch seconds.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent.errors import CsvError
from agent.ingest.quality import parse_decimal

MAX_CSV_BYTES = 256 << 20
MAX_FIELD = 128 << 10  # the csv module's own limit; a longer cell is refused with its place
MAX_COLUMNS = 10_000
_FIELD_LIMIT_LOCK = threading.Lock()


@dataclass(frozen=True)
class Table:
    path: Path
    columns: list[str]
    data: dict[str, list[str]]  # raw text per column, so callers decide what may be blank
    sha256: str
    row_numbers: list[int]  # the spreadsheet row of each data row

    @property
    def rows(self) -> int:
        return len(next(iter(self.data.values()), []))

    def require(self, names: list[str]) -> None:
        missing = [n for n in names if n not in self.data]
        if missing:
            raise CsvError(f"{self.path}: missing column(s) {', '.join(missing)}; "
                           f"the header has {', '.join(c[:40] for c in self.columns[:50])}")

    def _where(self, i: int, name: str) -> str:
        return f"{self.path}: row {self.row_numbers[i]}, column '{name[:60]}'"

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
                raise CsvError(f"{self._where(i, name)}: empty value (fill it in or drop the row)")
            try:
                out[i] = parse_decimal(text)
            except ValueError as exc:
                raise CsvError(f"{self._where(i, name)}: {exc}") from None
            if not math.isfinite(out[i]):
                raise CsvError(f"{self._where(i, name)}: value is not finite ({text[:20]})")
        return out

    def text(self, name: str) -> list[str]:
        """Column as stripped text; a blank cell is refused (a label column, a class name)."""
        self.require([name])
        out = [cell.strip() for cell in self.data[name]]
        for i, cell in enumerate(out):
            if not cell:
                raise CsvError(f"{self._where(i, name)}: empty value (every row needs one; drop "
                               "the rows whose value is unknown)")
        return out

    def timestamps(self, name: str = "timestamp", ascending: bool = True) -> np.ndarray:
        """ISO 8601 text (UTC when no zone is given) or finite epoch seconds."""
        self.require([name])
        out = np.empty(self.rows)
        for i, cell in enumerate(self.data[name]):
            text = cell.strip()
            try:
                out[i] = parse_decimal(text)
            except ValueError:
                out[i] = self._iso(i, name, text)
            if not math.isfinite(out[i]):
                raise CsvError(f"{self._where(i, name)}: '{text[:20]}' is not a time; use ISO 8601 "
                               "(2026-01-31T08:00:00Z) or epoch seconds")
        if ascending:
            back = np.flatnonzero(np.diff(out) < 0)
            if len(back):
                raise CsvError(f"{self._where(int(back[0]) + 1, name)}: earlier than the row "
                               "before; sort the file by time")
        return out

    def _iso(self, i: int, name: str, text: str) -> float:
        try:
            if len(text) > 64 or not text.isascii():
                raise ValueError(text)
            stamp = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise CsvError(f"{self._where(i, name)}: '{text[:40]}' is neither ISO 8601 nor epoch "
                           "seconds") from None
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=dt.UTC)
        return stamp.timestamp()


def read_table(path: Path, min_rows: int = 1, max_bytes: int = MAX_CSV_BYTES) -> Table:
    """Read a CSV with a header row and at least ``min_rows`` data rows."""
    try:
        with path.open("rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise CsvError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if len(raw) > max_bytes:
        raise CsvError(f"{path}: larger than {max_bytes >> 20} MiB; split it or sample it")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise CsvError(f"{path}: the file is UTF-16; save it as UTF-8 CSV")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise CsvError(f"{path}: row {line}: byte 0x{raw[exc.start]:02x} is not UTF-8; save the file "
                       "as UTF-8 CSV") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    header = [h.strip() for h in _next_row(reader, path, text, 1) or []]
    if not header:
        raise CsvError(f"{path}: the file is empty; it needs a header row")
    if len(header) > MAX_COLUMNS:
        raise CsvError(f"{path}: row 1: {len(header)} columns, more than {MAX_COLUMNS}")
    for col, name in enumerate(header, start=1):
        if not name:
            raise CsvError(f"{path}: row 1, column {col}: empty column name")
    if len(set(header)) != len(header):
        raise CsvError(f"{path}: row 1: repeated column names in the header")
    data: dict[str, list[str]] = {h: [] for h in header}
    numbers: list[int] = []
    while True:
        start = reader.line_num + 1
        row = _next_row(reader, path, text, start, header)
        if row is None:
            break
        if not row:
            continue
        if len(row) != len(header):
            raise CsvError(f"{path}: row {start}: {len(row)} cells, the header has {len(header)}")
        for name, cell in zip(header, row, strict=True):
            data[name].append(cell)
        numbers.append(start)
    if len(numbers) < min_rows:
        raise CsvError(f"{path}: a header and {len(numbers)} data rows; at least {min_rows} needed")
    return Table(path, header, data, hashlib.sha256(raw).hexdigest(), numbers)


def _next_row(reader: Iterator[list[str]], path: Path, text: str, start: int,
              header: list[str] | None = None) -> list[str] | None:
    try:
        return next(reader)
    except StopIteration:
        return None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            col = _long_column(text, start)
            name = f" '{header[col - 1][:60]}'" if header and 0 < col <= len(header) else ""
            raise CsvError(f"{path}: row {start}, column {col}{name}: a cell longer than "
                           f"{MAX_FIELD >> 10} KiB; is this the right file?") from None
        raise CsvError(f"{path}: row {start}: {exc}") from None


def _long_column(text: str, start: int) -> int:
    """Which column of the row starting at line ``start`` holds the over-long cell (read again
    with the limit raised, under a lock: the limit is process-wide)."""
    offset = 0
    for _ in range(start - 1):
        offset = text.index("\n", offset) + 1
    with _FIELD_LIMIT_LOCK:
        old = csv.field_size_limit(len(text) + 1)
        try:
            row = next(csv.reader(io.StringIO(text[offset:], newline="")), [])
        except csv.Error:
            row = []
        finally:
            csv.field_size_limit(old)
    return next((i for i, cell in enumerate(row, start=1) if len(cell) > MAX_FIELD), 0)
