"""Next-item examples from sessions: every prefix of length >= 2, as the original."""

from __future__ import annotations

import dataclasses

import numpy as np

from ader_tf.data.periods import Sessions

# Rows are built in chunks so that index matrices stay small even for Joint over all periods.
_CHUNK = 200_000


@dataclasses.dataclass(frozen=True)
class Examples:
    """Examples as padded arrays.

    Attributes:
        inputs: int32 [N, maxlen]; the items before the target, keeping the last ``maxlen``,
            left-padded with 0 so that the last input item sits at column ``maxlen - 1``.
        targets: int32 [N]; the item to predict (ids >= 1).
    """

    inputs: np.ndarray
    targets: np.ndarray

    def __post_init__(self) -> None:
        if self.inputs.ndim != 2 or self.targets.shape != (self.inputs.shape[0],):
            raise ValueError(
                f"inputs must be [N, maxlen] and targets [N]; got {self.inputs.shape} and "
                f"{self.targets.shape}"
            )

    def __len__(self) -> int:
        return int(self.targets.shape[0])

    @property
    def maxlen(self) -> int:
        return int(self.inputs.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Number of non-padding input items per example."""
        return np.count_nonzero(self.inputs, axis=1).astype(np.int32)

    def subset(self, index: np.ndarray) -> Examples:
        """The examples at ``index`` (integer positions or a boolean mask)."""
        return Examples(inputs=self.inputs[index], targets=self.targets[index])

    @staticmethod
    def empty(maxlen: int) -> Examples:
        return Examples(np.zeros((0, maxlen), np.int32), np.zeros(0, np.int32))

    @staticmethod
    def concatenate(parts: list[Examples]) -> Examples:
        """Stacks example sets with the same ``maxlen``."""
        if not parts:
            raise ValueError("concatenate needs at least one Examples")
        return Examples(
            inputs=np.concatenate([p.inputs for p in parts]).astype(np.int32),
            targets=np.concatenate([p.targets for p in parts]).astype(np.int32),
        )

    def sessions(self) -> list[list[int]]:
        """Each example as the session it was cut from: non-zero inputs followed by the target."""
        return [row[row != 0].tolist() + [int(t)] for row, t in zip(self.inputs, self.targets)]


def examples_from_sessions(sessions: Sessions, maxlen: int) -> Examples:
    """Cuts every session into its prefixes of length >= 2, as the original does.

    A session ``[i1..iL]`` yields L-1 examples, in the original's order: the whole session
    first, then ever shorter prefixes. Sessions of one click yield nothing.
    """
    if maxlen < 1:
        raise ValueError(f"maxlen must be >= 1, got {maxlen}")
    lengths = sessions.lengths
    starts = sessions.offsets[:-1]
    num_examples = np.maximum(lengths - 1, 0)
    # Example j of session s predicts position starts[s] + lengths[s] - 1 - j (j = 0..L-2).
    session_of_example = np.repeat(np.arange(len(sessions)), num_examples)
    first_example = np.repeat(np.cumsum(num_examples) - num_examples, num_examples)
    rank = np.arange(len(session_of_example)) - first_example
    target_pos = starts[session_of_example] + lengths[session_of_example] - 1 - rank
    session_start = starts[session_of_example]
    return _gather_examples(sessions.items, target_pos, session_start, maxlen)


def sessions_from_examples(examples: Examples) -> Sessions:
    """Each example as a session: its non-zero inputs followed by its target.

    The session-kNN models remember exemplars this way; ``Examples.sessions`` gives the same
    sessions as Python lists.
    """
    grid = np.concatenate([examples.inputs, examples.targets[:, None]], axis=1)
    mask = grid != 0
    lengths = mask.sum(axis=1)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Sessions(items=grid[mask].astype(np.int32), offsets=offsets)


def _gather_examples(
    items: np.ndarray, target_pos: np.ndarray, session_start: np.ndarray, maxlen: int
) -> Examples:
    """Builds the padded input rows for targets at flat positions ``target_pos``."""
    n = len(target_pos)
    inputs = np.zeros((n, maxlen), dtype=np.int32)
    offsets = np.arange(maxlen, 0, -1, dtype=np.int64)  # column c reads target_pos - (maxlen - c)
    padded_items = np.concatenate([[0], items]).astype(np.int32)  # index 0 reads as padding
    for lo in range(0, n, _CHUNK):
        hi = min(lo + _CHUNK, n)
        src = target_pos[lo:hi, None] - offsets[None, :]
        valid = src >= session_start[lo:hi, None]
        inputs[lo:hi] = padded_items[np.where(valid, src + 1, 0)]
    return Examples(inputs=inputs, targets=items[target_pos].astype(np.int32))
