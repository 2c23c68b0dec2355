"""Per-cycle data: item universe, split, test filtering; counts on the real data."""

import numpy as np
import pytest

from ader_tf.data.cycles import ContinualData
from ader_tf.errors import AderError
from tests.conftest import real_data_dir, write_period_files


@pytest.fixture
def toy_dir(tmp_path):
    periods = [
        [(1, 1), (1, 2), (1, 3), (2, 2), (2, 1), (9, 4)],  # session 9 is a one-click fragment
        [(3, 1), (3, 5), (3, 2), (4, 5), (4, 3), (5, 2), (5, 1), (6, 6), (6, 7)],
        [(7, 5), (7, 8), (7, 4)],
    ]
    return write_period_files(str(tmp_path), periods)


def test_cycle_one_by_hand(toy_dir):
    data = ContinualData(toy_dir, maxlen=4, valid_portion=0.25, seed=0)
    c = data.cycle(1)
    assert data.num_cycles == 2
    assert c.max_item == 4
    # Train: [1,2,3] -> 2 examples, [2,1] -> 1; the one-click fragment gives none.
    assert len(c.train) + len(c.valid) == 3
    assert len(c.valid) == 1  # round(3 * 0.75) = 2 train
    assert c.stats["train_one_click_sessions"] == 1
    # Test on period 1: item 5, 6, 7 unseen -> [1,2], [3] dropped, [2,1], [] -> 2 examples.
    assert sorted(c.test.sessions()) == [[1, 2], [2, 1]]
    assert c.stats["test_clicks_unseen_items_removed"] == 4
    assert c.stats["test_sessions_dropped_one_click"] == 1


def test_one_period_file_is_bad_input_the_command_line_names(tmp_path):
    folder = write_period_files(str(tmp_path), [[(1, 1), (1, 2)]])
    with pytest.raises(AderError, match="at least 2 period files .* found 1") as raised:
        ContinualData(folder, maxlen=4)
    assert str(raised.value).startswith(f"{folder}: ") and raised.value.exit_code == 2


def test_joint_trains_on_all_previous_periods(toy_dir):
    data = ContinualData(toy_dir, maxlen=4)
    plain, joint = data.cycle(2), data.cycle(2, joint=True)
    assert len(plain.train) + len(plain.valid) == 2 + 1 + 1 + 1
    assert len(joint.train) + len(joint.valid) == 5 + 3
    assert plain.max_item == joint.max_item == 7


def test_split_is_seeded_and_disjoint(toy_dir):
    a = ContinualData(toy_dir, maxlen=4, seed=1).cycle(2)
    b = ContinualData(toy_dir, maxlen=4, seed=1).cycle(2)
    np.testing.assert_array_equal(a.train.inputs, b.train.inputs)
    both = sorted(map(tuple, a.train.sessions() + a.valid.sessions()))
    assert both == sorted(map(tuple, ContinualData(toy_dir, maxlen=4, seed=5).cycle(2)
                              .train.sessions() + ContinualData(toy_dir, maxlen=4, seed=5)
                              .cycle(2).valid.sessions()))


def test_rejects_bad_cycle(toy_dir):
    with pytest.raises(ValueError, match="cycle must be in 1..2"):
        ContinualData(toy_dir).cycle(3)


@pytest.mark.parametrize(
    "dataset, examples, test, max_item",
    [("DIGINETICA", 55_663, 23_105, 18_569), ("YOOCHOOSE", 166_583, 151_770, 12_885)],
)
def test_real_cycle_one_counts_equal_the_original(dataset, examples, test, max_item):
    data = ContinualData(real_data_dir(dataset))
    c = data.cycle(1)
    assert len(c.train) + len(c.valid) == examples
    assert len(c.train) == round(examples * 0.9)
    assert len(c.test) == test
    assert c.max_item == max_item
    assert data.num_cycles == 16
