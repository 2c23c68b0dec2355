"""Period split and output order of the original (PROTOCOL 1.3 and 1.4)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from preprocessing.errors import PreprocessingError
from preprocessing.filtering import SECONDS_PER
from preprocessing.readers import DIGINETICA

NUM_THRESHOLDS = 17
DAY_SECONDS = 86_400


def period_thresholds(end_times: np.ndarray, dataset_format: str, test_fraction: str) -> np.ndarray:
    """Period boundaries from the session end times, as the original computes them.

    DIGINETICA steps back from the latest session end and keeps the last 17 boundaries (so
    period 0 gathers everything older); YOOCHOOSE steps forward from the earliest, drops the
    first boundary and keeps the next 17. `np.arange` is called with the same argument types as
    in the original (int64 or float64 scalars and an int step), so the boundaries are the same
    float64 values.

    Raises:
        PreprocessingError: YOOCHOOSE data too short to give any boundary.
    """
    step = SECONDS_PER[test_fraction]
    latest, earliest = end_times.max(), end_times.min()
    if dataset_format == DIGINETICA:
        return np.sort(np.arange(latest, earliest, -step))[-NUM_THRESHOLDS:]
    thresholds = np.sort(np.arange(earliest, latest, step))[1:][:NUM_THRESHOLDS]
    if len(thresholds) == 0:
        raise PreprocessingError(
            f"the sessions span less than two {test_fraction}s: no period boundary"
        )
    return thresholds


def grid_start(first_time: float) -> float:
    """Start of period 0 of a click log: the UTC midnight at or before its first click."""
    return float(np.floor(first_time / DAY_SECONDS) * DAY_SECONDS)


def grid_thresholds(start: float, last_time: float, period_seconds: float) -> np.ndarray:
    """Ends of fixed-length periods from `start` up to the one holding `last_time`.

    Period k holds the clicks in (start + k * length, start + (k + 1) * length], as
    `assign_periods` cuts them (a click at `start` itself goes to period 0). Unlike the
    competition formats' boundaries these do not depend on the data beyond its first and last
    click, so that later clicks can be appended as further periods of the same length.
    """
    count = max(1, int(np.ceil((last_time - start) / period_seconds)))
    return start + period_seconds * np.arange(1, count + 1, dtype=np.float64)


def assign_periods(time: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Period of each click, renumbered 0..K over the periods that hold clicks.

    A click goes to `searchsorted(thresholds, time, side='left') + 1`, by its own time.

    Returns:
        (period, present): the renumbered period of each click, and the original period
        numbers that are present, in order.
    """
    raw = np.searchsorted(thresholds, time, side="left") + 1
    present, period = np.unique(raw, return_inverse=True)
    return period.astype(np.int64), present


def output_order(
    period: np.ndarray, end_time: np.ndarray, time: np.ndarray, item: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The original's second item numbering and the order clicks are written in.

    Items are renumbered 1, 2, ... by first appearance walking the periods in order, each
    period's clicks sorted (stable) by their session's end time; then each period is sorted
    (stable) by click time, so clicks at the same time keep the session-end order.

    Args:
        period: Period of each click (any sortable labels).
        end_time: End time of each click's session.
        time: Time of each click.
        item: Item id of each click.

    Returns:
        (order, new_item): click indices in output order (grouped by period, ascending), and
        the new item id of each click (indexed like the inputs).
    """
    by_end = np.argsort(end_time, kind="stable")
    by_end = by_end[np.argsort(period[by_end], kind="stable")]
    codes, _ = pd.factorize(item[by_end], sort=False)
    new_item = np.empty(len(item), dtype=np.int64)
    new_item[by_end] = codes + 1
    order = by_end[np.argsort(time[by_end], kind="stable")]
    order = order[np.argsort(period[order], kind="stable")]
    return order, new_item
