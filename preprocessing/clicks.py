"""The clicks every reader returns, and helpers the readers share."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pandas as pd

from preprocessing.errors import RawDataError


@dataclasses.dataclass(frozen=True)
class Clicks:
    """Clicks in file order.

    Attributes:
        session: int64 session ids, 1.. by first appearance.
        item: int64 item ids, 1.. by first appearance.
        time: Click times: int64 seconds (YOOCHOOSE) or float64 seconds (the other formats).
        skipped_rows: Rows dropped while reading (DIGINETICA rows with an empty eventdate,
            generic-log rows not matching the filter column).
        item_names: The raw item id (text) of each item id: item id i is `item_names[i - 1]`.
            None when the reader does not keep them.
    """

    session: np.ndarray
    item: np.ndarray
    time: np.ndarray
    skipped_rows: int = 0
    item_names: np.ndarray | None = None


def first_appearance(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids 1, 2, ... in order of first appearance of each distinct key, and the distinct keys.

    Returns:
        (ids, uniques): int64 ids, and the keys in id order (id i is `uniques[i - 1]`).
    """
    codes, uniques = pd.factorize(keys, sort=False)
    return codes.astype(np.int64) + 1, np.asarray(uniques)


def check_readable(path: str) -> None:
    """Raises RawDataError for a missing, unreadable or empty file."""
    try:
        size = os.path.getsize(path)
        with open(path, "rb"):
            pass
    except OSError as error:
        raise RawDataError(path, None, "", error.strerror or str(error)) from error
    if size == 0:
        raise RawDataError(path, 1, "", "empty file")
