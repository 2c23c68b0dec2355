"""Examples: every prefix of length >= 2, last maxlen inputs, left padding; back to sessions."""

import numpy as np
import pytest

from ader_tf.data.examples import Examples, examples_from_sessions, sessions_from_examples
from ader_tf.data.periods import group_sessions


def _sessions(lists):
    sids = np.concatenate([[k] * len(s) for k, s in enumerate(lists, start=1)])
    return group_sessions(sids, np.concatenate(lists))


def reference_examples(lists, maxlen):
    """The original's Sampler + label_generator written plainly."""
    rows, targets = [], []
    for s in lists:
        for cut in range(len(s), 1, -1):
            prefix = s[:cut]
            row = [0] * maxlen
            history = prefix[:-1][-maxlen:]
            row[maxlen - len(history):] = history
            rows.append(row)
            targets.append(prefix[-1])
    return np.array(rows, dtype=np.int32).reshape(-1, maxlen), np.array(targets, dtype=np.int32)


def test_matches_reference_on_random_sessions(rng):
    lists = [list(rng.integers(1, 50, size=rng.integers(1, 12))) for _ in range(200)]
    for maxlen in (1, 3, 5, 50):
        ex = examples_from_sessions(_sessions(lists), maxlen)
        inputs, targets = reference_examples(lists, maxlen)
        np.testing.assert_array_equal(ex.inputs, inputs)
        np.testing.assert_array_equal(ex.targets, targets)


def test_small_case_by_hand():
    ex = examples_from_sessions(_sessions([[1, 2, 3], [4], [5, 6]]), maxlen=3)
    assert ex.inputs.tolist() == [[0, 1, 2], [0, 0, 1], [0, 0, 5]]
    assert ex.targets.tolist() == [3, 2, 6]
    assert ex.lengths.tolist() == [2, 1, 1]
    assert ex.sessions() == [[1, 2, 3], [1, 2], [5, 6]]


def test_shape_validation():
    with pytest.raises(ValueError, match="inputs must be"):
        Examples(np.zeros((3, 4), np.int32), np.zeros(2, np.int32))


def test_sessions_from_examples():
    exemplars = Examples(np.array([[0, 8, 9], [0, 0, 4]], np.int32), np.array([1, 5], np.int32))
    assert sessions_from_examples(exemplars).as_lists() == [[8, 9, 1], [4, 5]]
    assert sessions_from_examples(exemplars).as_lists() == exemplars.sessions()
