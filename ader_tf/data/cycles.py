"""Per-cycle data of a continual run: train/validation/test examples and the item universe.

At cycle t (1..K) the model trains on period t-1 (Joint: periods 0..t-1) and is tested on
period t, as the original protocol does.

With a probe fraction f > 0, a seeded share f of each period's sessions is that period's
probe: it is removed wherever the period is training data (training and validation examples,
and with them exemplar candidates, importance samples, whole-session training and kNN
memory), so no cycle ever trains on it, while each cycle's test set (the next period) stays
whole. After every cycle the model is tested on each period's probe (`probe_examples`),
which gives the accuracy matrix that forgetting is measured on. With f = 0 every number is
the protocol's.
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
            ``validation_sessions`` for `session_split`) of each cycle, the probes from its
            ``probe_sessions`` stream of each period.
        probe_fraction: share of each period's sessions held out as its probe, in [0, 1)
            (0: no probe, the original protocol).
    """

    def __init__(
        self, period_dir: str, maxlen: int = 50, valid_portion: float = 0.1, seed: int = 0,
        probe_fraction: float = 0.0,
    ) -> None:
        if not 0.0 < valid_portion < 1.0:
            raise ValueError(f"valid_portion must be in (0, 1), got {valid_portion}")
        if not 0.0 <= probe_fraction < 1.0:
            raise ValueError(f"probe_fraction must be in [0, 1), got {probe_fraction}")
        self.period_dir = period_dir
        self.maxlen = maxlen
        self.valid_portion = valid_portion
        self.probe_fraction = probe_fraction
        self.streams = RandomStreams(seed)
        self.period_files = list_period_files(period_dir)
        if len(self.period_files) < 2:
            raise PeriodFileError(f"{period_dir}: a run needs at least 2 period files "
                                  "(period_0.txt, period_1.txt), found 1")
        self._sessions: dict[int, Sessions] = {}
        self._probe_masks: dict[int, np.ndarray] = {}
        self._training_sessions: dict[int, Sessions] = {}

    @property
    def num_cycles(self) -> int:
        return len(self.period_files) - 1

    @property
    def num_periods(self) -> int:
        return len(self.period_files)

    def sessions(self, period: int) -> Sessions:
        """All sessions of ``period_<period>.txt``, probe included (read once, then cached).

        What a cycle is tested on; what it trains on is `training_sessions`.
        """
        if period not in self._sessions:
            self._sessions[period] = read_period_sessions(self.period_files[period])
        return self._sessions[period]

    def probe_mask(self, period: int) -> np.ndarray:
        """Boolean [sessions of the period]: the sessions held out as the period's probe.

        ``round(probe_fraction * n)`` of its ``n`` sessions, drawn without replacement from
        the run's ``probe_sessions`` stream of the period (its key's cycle is the period), so
        every cycle and a resumed run hold out the same sessions. All false without a probe.
        """
        if period not in self._probe_masks:
            count = len(self.sessions(period))
            mask = np.zeros(count, dtype=bool)
            if self.probe_fraction > 0:
                rng = self.streams.generator("probe_sessions", period)
                size = int(round(self.probe_fraction * count))
                mask[rng.choice(count, size=size, replace=False)] = True
            self._probe_masks[period] = mask
        return self._probe_masks[period]

    def training_sessions(self, period: int) -> Sessions:
        """The sessions of ``period`` that training may use: all but its probe (cached)."""
        if not self.probe_fraction:
            return self.sessions(period)
        if period not in self._training_sessions:
            self._training_sessions[period] = self.sessions(period).select(
                ~self.probe_mask(period))
        return self._training_sessions[period]

    def probe_sessions(self, period: int) -> Sessions:
        """The probe of ``period``: its held-out sessions, in file order (none without one)."""
        return self.sessions(period).select(self.probe_mask(period))

    def seen_items(self, cycle: int) -> np.ndarray:
        """Boolean mask over item ids: items in the training sessions of cycles <= ``cycle``
        (the periods before ``cycle``, their probes left out)."""
        top = max(int(self.training_sessions(p).items.max(initial=0)) for p in range(cycle))
        seen = np.zeros(top + 1, dtype=bool)
        for p in range(cycle):
            seen[self.training_sessions(p).items] = True
        return seen

    def cycle(self, cycle: int, joint: bool = False) -> CycleData:
        """Builds the data of ``cycle`` (1-based).

        The stats record what the protocol removes: one-click training sessions (they yield
        no example), test clicks on unseen items and test sessions left with one click.
        """
        if not 1 <= cycle <= self.num_cycles:
            raise ValueError(f"cycle must be in 1..{self.num_cycles}, got {cycle}")
        train_periods = [cycle - 1] + (list(range(cycle - 1)) if joint else [])
        train_sessions = Sessions.concatenate(
            [self.training_sessions(p) for p in train_periods])
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
        if self.probe_fraction:
            stats["probe_sessions_held_out"] = int(
                sum(self.probe_mask(p).sum() for p in train_periods))
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
        sessions = Sessions.concatenate([self.training_sessions(p) for p in periods])
        rng = self.streams.generator("validation_sessions", cycle)
        held_out = rng.random(len(sessions)) < self.valid_portion
        valid = examples_from_sessions(sessions.select(held_out), self.maxlen)
        return sessions.select(~held_out), valid

    def probe_examples(self, cycle: int) -> dict[int, Examples]:
        """Every period's probe as examples the model of ``cycle`` is tested on, by period.

        Filtered as a test set is, relative to the items that cycle knows (`seen_items`):
        clicks on other items are removed, then sessions left with one click. A probe may be
        left with no example. Empty without a probe fraction.
        """
        if not self.probe_fraction:
            return {}
        seen = self.seen_items(cycle)
        probes = {}
        for period in range(self.num_periods):
            sessions, _ = filter_test_sessions(self.probe_sessions(period), seen)
            probes[period] = examples_from_sessions(sessions, self.maxlen)
        return probes

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
