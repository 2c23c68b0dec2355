"""The original's filtering steps (PROTOCOL 1.2), vectorised over dense session and item ids."""

from __future__ import annotations

import dataclasses

import numpy as np

from preprocessing.errors import PreprocessingError
from preprocessing.readers import Clicks

SECONDS_PER = {"day": 86_400, "week": 7 * 86_400}


@dataclasses.dataclass(frozen=True)
class Filtered:
    """Clicks left after filtering, in file order, and what each step removed.

    Attributes:
        session, item, time: The clicks left.
        session_end: Per session id, the latest click time after step 3 (the original's
            `sess_end`; the selection step drops whole sessions, so it stays valid).
        survivors: Per session id, whether the session is left after step 3. Period thresholds
            come from these sessions' end times, including those the selection step dropped.
        steps: One record per step: its name, what it removed and what is left.
    """

    session: np.ndarray
    item: np.ndarray
    time: np.ndarray
    session_end: np.ndarray
    survivors: np.ndarray
    steps: list[dict]


def count(session: np.ndarray, item: np.ndarray) -> dict:
    """Clicks, distinct sessions and distinct items."""
    return {
        "clicks": int(len(session)),
        "sessions": int(np.count_nonzero(np.bincount(session))),
        "items": int(np.count_nonzero(np.bincount(item))),
    }


def step_record(name: str, before: dict, after: dict) -> dict:
    """What a step removed (clicks, sessions and items no longer present) and what is left."""
    removed = {key: before[key] - after[key] for key in before}
    return {"step": name, "removed": removed, "left": after}


class _Steps:
    """Applies keep-masks to parallel click arrays and records each step.

    With a `counted` mask, the records count only those clicks (the steps still act on all).
    """

    def __init__(
        self,
        session: np.ndarray,
        item: np.ndarray,
        time: np.ndarray,
        counted: np.ndarray | None = None,
    ) -> None:
        self.session, self.item, self.time = session, item, time
        self.counted = counted
        self.records: list[dict] = []
        self._counts = self._count()

    def _count(self) -> dict:
        if self.counted is None:
            return count(self.session, self.item)
        return count(self.session[self.counted], self.item[self.counted])

    def keep(self, name: str, mask: np.ndarray) -> None:
        """Keeps the clicks where `mask` holds."""
        self.session, self.item, self.time = self.session[mask], self.item[mask], self.time[mask]
        if self.counted is not None:
            self.counted = self.counted[mask]
        after = self._count()
        self.records.append(step_record(name, self._counts, after))
        self._counts = after


def known_item_clicks(session: np.ndarray, item: np.ndarray, size: int) -> np.ndarray:
    """Clicks per item id in sessions of more than one click: what step 2 counts.

    Args:
        session, item: The clicks.
        size: Length of the result (largest item id + 1 at least).
    """
    lengths = np.bincount(session)
    return np.bincount(item[lengths[session] > 1], minlength=size)


def session_end_times(session: np.ndarray, time: np.ndarray, size: int) -> np.ndarray:
    """Latest click time of each session id (entries of absent sessions are meaningless)."""
    lowest = -np.inf if time.dtype.kind == "f" else np.iinfo(np.int64).min
    end = np.full(size, lowest, dtype=time.dtype)
    np.maximum.at(end, session, time)
    return end


def filter_clicks(
    clicks: Clicks,
    threshold_item: int,
    threshold_sess: int,
    select_fraction: float | None = None,
    test_fraction: str = "week",
    prior_item_clicks: np.ndarray | None = None,
    counted: np.ndarray | None = None,
) -> Filtered:
    """Drops short sessions and rare items, then optionally keeps only the latest sessions.

    Args:
        clicks: The clicks as read.
        threshold_item: Items with at most this many clicks (after step 1) are dropped.
        threshold_sess: Sessions with at most this many clicks (after step 2) are dropped.
        select_fraction: YOOCHOOSE `--yoochoose_select` when below 1, else None.
        test_fraction: 'day' or 'week': the test window the selection step leaves out.
        prior_item_clicks: Per item id, clicks seen before these clicks (appending periods),
            added to the item counts of step 2; None for none.
        counted: Which clicks the step records count (appending: the new period's); None for
            all.

    Raises:
        PreprocessingError: No click is left, or the selection step has no session to rank.
    """
    size = int(clicks.session.max(initial=0)) + 1
    steps = _Steps(clicks.session, clicks.item, clicks.time, counted)
    sessions = np.bincount(steps.session, minlength=size)
    steps.keep("sessions with one click", sessions[steps.session] > 1)
    items = np.bincount(steps.item, minlength=int(clicks.item.max(initial=0)) + 1)
    if prior_item_clicks is not None:
        shared = min(len(items), len(prior_item_clicks))
        items[:shared] += prior_item_clicks[:shared]
    steps.keep(f"items with <= {threshold_item} clicks", items[steps.item] > threshold_item)
    sessions = np.bincount(steps.session, minlength=size)
    long_enough = sessions[steps.session] > threshold_sess
    steps.keep(f"sessions with <= {threshold_sess} clicks", long_enough)
    if len(steps.session) == 0:
        raise PreprocessingError("no click is left after filtering short sessions and rare items")

    session_end = session_end_times(steps.session, steps.time, size)
    survivors = np.bincount(steps.session, minlength=size) > 0
    if select_fraction is not None and select_fraction < 1.0:
        threshold = _selection_threshold(
            steps.session, steps.time, session_end, select_fraction, test_fraction
        )
        steps.keep(
            f"sessions ending before the latest {select_fraction:g} (yoochoose_select)",
            session_end[steps.session] >= threshold,
        )
    return Filtered(steps.session, steps.item, steps.time, session_end, survivors, steps.records)


def _selection_threshold(
    session: np.ndarray,
    time: np.ndarray,
    session_end: np.ndarray,
    select_fraction: float,
    test_fraction: str,
) -> np.integer | np.floating:
    """The original's `yoochoose_select` cut-off on session end times.

    As in the original: each session with at least two clicks that ends at least one test window
    before the last click counts (its length - 1) times, and the cut-off is the lower
    (1 - fraction) percentile of those end times.
    """
    lengths = np.bincount(session)
    ends = session_end[: len(lengths)]
    counted = (lengths > 1) & (ends <= time.max() - SECONDS_PER[test_fraction])
    train_session_times = np.repeat(ends[counted], lengths[counted] - 1)
    if len(train_session_times) == 0:
        raise PreprocessingError(
            "yoochoose_select: no session ends a full test window before the last click"
        )
    return np.percentile(train_session_times, (1.0 - select_fraction) * 100.0, method="lower")
