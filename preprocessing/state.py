"""The files beside the period files that keep item ids stable and let later clicks be appended.

* `items.csv`: item_id (the id in the period files), raw_id (the log's id, as text),
  first_period (the first period file holding the item). Written for every format.
* `item_counts.csv`: raw_id, clicks: per raw item ever read, its clicks in sessions of more
  than one click, which is what the rare-item filter counts (items below the threshold too,
  so that they can pass it once more clicks arrive). Click logs only.
* `preprocessing.json`: what appending needs (the reader options, the period grid, the last
  session id). Click logs only.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from preprocessing.errors import PreprocessingError

ITEMS_FILE = "items.csv"
ITEM_COUNTS_FILE = "item_counts.csv"
STATE_FILE = "preprocessing.json"
STATE_VERSION = 1
SESSION_ID_RULE = (
    "session ids are 1, 2, ... in order of a session's first row in the log; appended clicks "
    "number their sessions the same way after last_session_id, so a session crossing the last "
    "period's end gets a new id for its later clicks"
)


def write_items(
    path: str, item_id: np.ndarray, raw_id: np.ndarray, first_period: np.ndarray
) -> None:
    """Writes items.csv, rows in item_id order."""
    table = pd.DataFrame({"item_id": item_id, "raw_id": raw_id, "first_period": first_period})
    _write_csv(path, table.sort_values("item_id", kind="stable"))


def read_items(folder: str) -> pd.DataFrame:
    """items.csv of `folder`: item_id and first_period as int64, raw_id as text.

    Raises:
        PreprocessingError: The file is missing or malformed.
    """
    table = _read_csv(os.path.join(folder, ITEMS_FILE), {"item_id": "int64", "raw_id": object,
                                                         "first_period": "int64"})
    if table["raw_id"].duplicated().any() or table["item_id"].duplicated().any():
        raise PreprocessingError(f"{os.path.join(folder, ITEMS_FILE)}: duplicate ids")
    return table


def write_item_counts(path: str, raw_id: np.ndarray, clicks: np.ndarray) -> None:
    """Writes item_counts.csv (items with at least one counted click)."""
    table = pd.DataFrame({"raw_id": raw_id, "clicks": clicks})
    _write_csv(path, table[table["clicks"] > 0])


def read_item_counts(folder: str) -> pd.Series:
    """item_counts.csv of `folder` as clicks indexed by raw_id."""
    table = _read_csv(os.path.join(folder, ITEM_COUNTS_FILE), {"raw_id": object,
                                                               "clicks": "int64"})
    return table.set_index("raw_id")["clicks"]


def write_state(path: str, state: dict) -> None:
    """Writes preprocessing.json (floats as Python writes them, so they read back exactly)."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump({"version": STATE_VERSION, **state}, f, indent=2)
        f.write("\n")


def read_state(folder: str) -> dict:
    """preprocessing.json of `folder`.

    Raises:
        PreprocessingError: It is missing (the folder was not made from a click log) or of
            another version.
    """
    path = os.path.join(folder, STATE_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
    except FileNotFoundError as error:
        raise PreprocessingError(
            f"{path}: not found: --append extends a folder written from a click log (run once "
            "without --append first)"
        ) from error
    except (OSError, ValueError) as error:
        raise PreprocessingError(f"{path}: cannot read: {error}") from error
    if state.get("version") != STATE_VERSION:
        raise PreprocessingError(f"{path}: version {state.get('version')!r}, "
                                 f"expected {STATE_VERSION}")
    return state


def _write_csv(path: str, table: pd.DataFrame) -> None:
    """CSV with a header, quoted where needed; raw ids written back byte for byte."""
    table.to_csv(path, index=False, encoding="utf-8", errors="surrogateescape",
                 lineterminator="\n")


def _read_csv(path: str, dtypes: dict) -> pd.DataFrame:
    """Reads a CSV this module wrote; every id stays text ('NA' and '' too)."""
    try:
        table = pd.read_csv(path, dtype=dtypes, keep_default_na=False, na_filter=False,
                            encoding="utf-8", encoding_errors="surrogateescape")
    except FileNotFoundError as error:
        raise PreprocessingError(f"{path}: not found") from error
    except (OSError, ValueError, pd.errors.ParserError) as error:
        raise PreprocessingError(f"{path}: cannot read: {error}") from error
    if list(table.columns) != list(dtypes):
        raise PreprocessingError(f"{path}: columns {list(table.columns)}, "
                                 f"expected {list(dtypes)}")
    return table
