"""Per-cycle data of a continual run: train/validation/test examples and the item universe.

At cycle t (1..K) the model trains on period t-1 (Joint: periods 0..t-1) and is tested on
period t, as the original protocol does.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import numpy as np

from ader_tf.data.examples import Examples, examples_from_sessions
from ader_tf.data.periods import (
    PeriodFileError,
    Sessions,
    list_period_files,
    read_period_sessions,
)
from ader_tf.random_streams import RandomStreams

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class CycleData:
    """Everything one cycle trains and tests on.

    Attributes:
        cycle: 1-based cycle number (tested on ``period_<cycle>.txt``).
        train: training examples (90% of the prefixes).
        valid: validation examples (the other 10%).
        test: test examples after removing unseen items.
        max_item: largest item id seen in the training files so far.
        stats: counts a person may want to check (see ``ContinualData.cycle``).
    """

    cycle: int
    train: Examples
    valid: Examples
    test: Examples
    max_item: int
    stats: dict[str, Any]


class ContinualData:
    """Loads the period files of one dataset once and serves each cycle's data.

    Args:
        period_dir: folder with ``period_0.txt .. period_K.txt``.
        maxlen: input window length.
        valid_portion: share of the training prefixes held out for validation.
        seed: the run's seed; the split draws from its ``validation_split`` stream (or
            ``validation_sessions`` for `session_split`) of each cycle.
    """

    def __init__(
        self, period_dir: str, maxlen: int = 50, valid_portion: float = 0.1, seed: int = 0
    ) -> None:
        if not 0.0 < valid_portion < 1.0:
            raise ValueError(f"valid_portion must be in (0, 1), got {valid_portion}")
        self.period_dir = period_dir
        self.maxlen = maxlen
        self.valid_portion = valid_portion
        self.streams = RandomStreams(seed)
        self.period_files = list_period_files(period_dir)
        if len(self.period_files) < 2:
            raise PeriodFileError(f"{period_dir}: a run needs at least 2 period files "
                                  "(period_0.txt, period_1.txt), found 1")
        self._sessions: dict[int, Sessions] = {}

    @property
    def num_cycles(self) -> int:
        return len(self.period_files) - 1

    def sessions(self, period: int) -> Sessions:
        """The sessions of ``period_<period>.txt`` (read once, then cached)."""
        if period not in self._sessions:
            self._sessions[period] = read_period_sessions(self.period_files[period])
        return self._sessions[period]

    def seen_items(self, cycle: int) -> np.ndarray:
        """Boolean mask over item ids: items in any training file of cycles <= ``cycle``."""
        top = max(int(self.sessions(p).items.max(initial=0)) for p in range(cycle))
        seen = np.zeros(top + 1, dtype=bool)
        for p in range(cycle):
            seen[self.sessions(p).items] = True
        return seen

    def cycle(self, cycle: int, joint: bool = False) -> CycleData:
        """Builds the data of ``cycle`` (1-based).

        The stats record what the protocol removes: one-click training sessions (they yield
        no example), test clicks on unseen items and test sessions left with one click.
        """
        if not 1 <= cycle <= self.num_cycles:
            raise ValueError(f"cycle must be in 1..{self.num_cycles}, got {cycle}")
        train_periods = [cycle - 1] + (list(range(cycle - 1)) if joint else [])
        train_sessions = Sessions.concatenate([self.sessions(p) for p in train_periods])
        examples = examples_from_sessions(train_sessions, self.maxlen)
        train, valid = self._split(examples, cycle)

        seen = self.seen_items(cycle)
        max_item = int(np.flatnonzero(seen).max())
        test_sessions, test_stats = filter_test_sessions(self.sessions(cycle), seen)
        test = examples_from_sessions(test_sessions, self.maxlen)

        stats = {
            "train_periods": train_periods,
            "train_clicks": train_sessions.num_clicks,
            "train_sessions": len(train_sessions),
            "train_one_click_sessions": int((train_sessions.lengths == 1).sum()),
            "train_examples": len(train),
            "valid_examples": len(valid),
            "test_examples": len(test),
            "max_item": max_item,
            **test_stats,
        }
        if stats["train_one_click_sessions"]:
            log.info(
                "cycle %d: %d one-click training session fragments yield no example",
                cycle, stats["train_one_click_sessions"],
            )
        return CycleData(cycle, train, valid, test, max_item, stats)

    def session_split(self, cycle: int, joint: bool = False) -> tuple[Sessions, Examples]:
        """Training sessions in time order and validation examples of held-out sessions.

        For training on whole sessions (GRU4Rec's session-parallel mode), where the
        protocol's prefix-level split would leak validation targets into training: a seeded
        ``valid_portion`` of the sessions is held out and yields the validation examples.
        """
        if not 1 <= cycle <= self.num_cycles:
            raise ValueError(f"cycle must be in 1..{self.num_cycles}, got {cycle}")
        periods = list(range(cycle)) if joint else [cycle - 1]
        sessions = Sessions.concatenate([self.sessions(p) for p in periods])
        rng = self.streams.generator("validation_sessions", cycle)
        held_out = rng.random(len(sessions)) < self.valid_portion
        valid = examples_from_sessions(sessions.select(held_out), self.maxlen)
        return sessions.select(~held_out), valid

    def _split(self, examples: Examples, cycle: int) -> tuple[Examples, Examples]:
        """Seeded random split at example level (not session level), as the original."""
        rng = self.streams.generator("validation_split", cycle)
        order = rng.permutation(len(examples))
        n_train = int(np.round(len(examples) * (1.0 - self.valid_portion)))
        return examples.subset(order[:n_train]), examples.subset(order[n_train:])


def filter_test_sessions(sessions: Sessions, seen: np.ndarray) -> tuple[Sessions, dict[str, int]]:
    """Removes clicks on items never seen in training, then sessions left with one click.

    This is the original's test filtering (it removes clicks from the middle of sessions too).
    """
    items = sessions.items
    known = np.zeros(len(items), dtype=bool)
    in_range = items < len(seen)
    known[in_range] = seen[items[in_range]]
    session_of_click = np.repeat(np.arange(len(sessions)), sessions.lengths)
    kept_lengths = np.bincount(session_of_click[known], minlength=len(sessions))
    kept_items = items[known]
    offsets = np.zeros(len(sessions) + 1, dtype=np.int64)
    np.cumsum(kept_lengths, out=offsets[1:])
    filtered = Sessions(kept_items.astype(np.int32), offsets)
    keep = kept_lengths >= 2
    stats = {
        "test_clicks": int(len(items)),
        "test_clicks_unseen_items_removed": int((~known).sum()),
        "test_sessions_dropped_one_click": int(((kept_lengths == 1)).sum()),
    }
    return filtered.select(keep), stats
