"""Which rows a bundle's output-dependent references come from: rows the model never fitted.

With a holdout CSV those are its rows. Without one, the builder holds out the newest quarter of
the training CSV by time (its ``timestamp`` column; by file order when it has none), says so,
and records it: the model must not have been fitted on those rows. Too few of them: refused.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.errors import BundleError
from agent.ingest.csvio import Table

HOLDOUT_SHARE = 0.25
MIN_HOLDOUT_ROWS = 30  # fewer cannot estimate an error rate or a mean confidence at all;
# a small holdout widens the thresholds (its own uncertainty counts), it never narrows them


@dataclass(frozen=True)
class Split:
    """Row indices of the training CSV: the rows the model may have fitted, and the held-out
    rows (None when a holdout CSV gives them), both in time order."""

    fitted: np.ndarray
    held_out: np.ndarray | None
    record: dict[str, Any]  # what the manifest says about it
    note: str | None  # what the builder tells the user


def newest_share(table: Table, min_rows: int = MIN_HOLDOUT_ROWS) -> Split:
    """Hold out the newest HOLDOUT_SHARE of ``table``, or refuse when that is too few rows."""
    n = table.rows
    held = math.ceil(n * HOLDOUT_SHARE)
    if held < min_rows or n - held < min_rows:
        raise BundleError(
            f"{table.path.name} has {n} rows: without --holdout-csv the newest "
            f"{round(100 * HOLDOUT_SHARE)}% ({held} rows) would be the holdout, and at least "
            f"{min_rows} rows are needed both for it and for the rest; give --holdout-csv with "
            f"at least {min_rows} labelled rows the model never saw, or more training rows")
    if "timestamp" in table.data:
        times = table.timestamps("timestamp", ascending=False)
        order = np.argsort(times, kind="stable")
        by = "timestamp"
        first, last = _iso(times[order[n - held]]), _iso(times[order[-1]])
    else:
        order = np.arange(n)
        by = "file order (no timestamp column)"
        first, last = f"row {n - held + 2}", f"row {n + 1}"
    fitted, held_out = order[: n - held], order[n - held:]
    record = {"outputs_from": "newest share of the training CSV", "share": HOLDOUT_SHARE,
              "by": by, "holdout_rows": int(held), "from": first, "to": last}
    note = (f"no --holdout-csv: the newest {round(100 * HOLDOUT_SHARE)}% of {table.path.name} by "
            f"{by} ({held} rows, {first} .. {last}) is the holdout that calibrates every "
            "output-dependent threshold; the model must not have been fitted on those rows")
    return Split(np.sort(fitted), np.sort(held_out), record, note)


def from_csv(train: Table, holdout: Table, min_rows: int = MIN_HOLDOUT_ROWS) -> Split:
    if holdout.rows < min_rows:
        raise BundleError(f"--holdout-csv: {holdout.path.name} has {holdout.rows} rows; at least "
                          f"{min_rows} labelled rows the model never saw are needed to calibrate on")
    record = {"outputs_from": "holdout CSV", "file": holdout.path.name, "sha256": holdout.sha256,
              "holdout_rows": holdout.rows}
    return Split(np.arange(train.rows), None, record, None)


def _iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="seconds")
