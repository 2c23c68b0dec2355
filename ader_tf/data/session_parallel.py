"""GRU4Rec's session-parallel mini-batches and its popularity-based negative sampling.

Hidasi et al. 2016 (arXiv 1511.06939) and Hidasi & Karatzoglou 2018 (arXiv 1706.03847),
following the authors' code where the papers leave a choice open:

- Each of the B rows of a mini-batch follows one session click by click; when its session
  ends the next unused session takes the row and the row's hidden state is to be zeroed.
- Sessions enter the rows in the order given (time order); shuffling is an option, off by
  default, as the published time-ordered training.
- The scores of a step are computed only for the batch's targets (in-batch negatives) plus
  `n_sample` items drawn, shared by all rows, with probability proportional to
  support^`sample_alpha`.

The step math (state resets, negative masks, losses) is in `ader_tf.models.session_parallel`
and the trainer that joins both in `ader_tf.continual.session_parallel`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import numpy as np

from ader_tf.data.periods import Sessions

# === Session-parallel mini-batches ===


class ParallelStep(NamedTuple):
    """One step of session-parallel training, every field [B].

    Attributes:
        inputs: int32 current click of each row (0 in inactive rows).
        targets: int32 next click of each row (0 in inactive rows).
        reset: bool, the row starts a new session at this step: zero its state before it.
        active: bool, the row holds a session. Rows whose sessions have run out near the end
            of the data stay in the batch (fixed shapes) with active False.
    """

    inputs: np.ndarray
    targets: np.ndarray
    reset: np.ndarray
    active: np.ndarray


def num_short_sessions(sessions: Sessions) -> int:
    """Number of sessions with fewer than 2 clicks: they give no training step."""
    return int(np.count_nonzero(sessions.lengths < 2))


def session_parallel_batches(
    sessions: Sessions,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle_sessions: bool = False,
) -> Iterator[ParallelStep]:
    """Yields GRU4Rec's session-parallel steps over `sessions`.

    At the start, rows 0..B-1 take the first B sessions. At each step every active row
    predicts its session's next click from the current one. A row whose session has no further
    target takes the next unused session (rows in increasing order); once none is left the row
    becomes inactive. Iteration ends when no row is active. Sessions of length < 2 are skipped
    (`num_short_sessions` counts them).

    Args:
        sessions: The sessions, in the order they should enter the rows (time order).
        batch_size: Number of rows B.
        rng: Generator for `shuffle_sessions` (default: a fresh unseeded one).
        shuffle_sessions: Permute the sessions first. GRU4Rec's time-ordered training does not.

    Yields:
        `ParallelStep`s; every (click, next click) pair of every session appears exactly once.

    Raises:
        ValueError: If `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    lengths = sessions.lengths
    starts = sessions.offsets[:-1]
    items = np.asarray(sessions.items, np.int32)
    order = np.flatnonzero(lengths >= 2)
    if shuffle_sessions:
        order = (rng or np.random.default_rng()).permutation(order)

    row_session = np.full(batch_size, -1, np.int64)
    taken = min(batch_size, len(order))
    row_session[:taken] = order[:taken]
    position = np.zeros(batch_size, np.int64)  # index of the current click in its session
    active = row_session >= 0
    reset = active.copy()
    while active.any():
        current = np.where(active, starts[row_session] + position, 0)
        yield ParallelStep(
            inputs=np.where(active, items[current], 0).astype(np.int32),
            targets=np.where(active, items[np.minimum(current + 1, len(items) - 1)], 0).astype(
                np.int32
            ),
            reset=reset,
            active=active.copy(),
        )
        position += 1
        ended = np.flatnonzero(active & (position + 1 >= lengths[row_session]))
        reset = np.zeros(batch_size, bool)
        fresh = order[taken : taken + len(ended)]
        taken += len(fresh)
        refilled, emptied = ended[: len(fresh)], ended[len(fresh) :]
        row_session[refilled] = fresh
        position[refilled] = 0
        reset[refilled] = True
        active[emptied] = False


# === Negative sampling ===


class PopularitySampler:
    """Draws items with probability proportional to count^alpha (GRU4Rec's `sample_alpha`).

    alpha = 1 samples by popularity, alpha = 0 uniformly. Items with count 0 (padding id 0,
    items absent from the training data) are never drawn, also for alpha = 0, as the authors'
    code samples only items of its training data.

    Args:
        item_counts: [num_items + 1] clicks per item id (index 0 = padding).
        alpha: The exponent (GRU4Rec's default 0.75).
        rng: Random generator (default: a fresh unseeded one).

    Raises:
        ValueError: On a negative alpha or count, or when no item has a positive count.
    """

    def __init__(
        self,
        item_counts: np.ndarray,
        alpha: float = 0.75,
        rng: np.random.Generator | None = None,
    ) -> None:
        counts = np.asarray(item_counts, np.float64)
        if alpha < 0:
            raise ValueError(f"`alpha` must be >= 0, got {alpha}.")
        if counts.ndim != 1 or (counts < 0).any() or not (counts > 0).any():
            raise ValueError(
                f"`item_counts` must be a 1-D array of counts >= 0 with one > 0, got {counts!r}."
            )
        self.alpha = float(alpha)
        self.rng = rng or np.random.default_rng()
        weights = np.where(counts > 0, counts**self.alpha, 0.0)
        self.probabilities = weights / weights.sum()
        self._cdf = np.cumsum(self.probabilities)
        self._cdf[-1] = 1.0  # searchsorted below never runs past the end

    @classmethod
    def from_sessions(
        cls,
        sessions: Sessions,
        num_items: int,
        alpha: float = 0.75,
        rng: np.random.Generator | None = None,
    ) -> PopularitySampler:
        """A sampler over the clicks of `sessions` (item ids 1..num_items)."""
        counts = np.bincount(np.asarray(sessions.items, np.int64), minlength=num_items + 1)
        return cls(counts[: num_items + 1], alpha, rng)

    def sample(self, size: int) -> np.ndarray:
        """`size` item ids (int32), drawn independently with replacement."""
        ids = np.searchsorted(self._cdf, self.rng.random(size), side="right")
        return ids.astype(np.int32)


def candidate_items(targets: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The scored items of a step: the B targets (column j is row j's positive) + samples."""
    return np.concatenate([targets, samples]).astype(np.int32)
