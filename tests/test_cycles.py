"""Per-cycle data: item universe, split, test filtering, probes; counts on the real data."""

import collections
import dataclasses

import numpy as np
import pytest

from ader_tf.data.cycles import ContinualData, filter_test_sessions
from ader_tf.data.examples import examples_from_sessions
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


# === Probes: held-out sessions of each period, never trained on ===


def _rows(examples) -> collections.Counter:
    """Examples as a multiset of the session prefixes they hold."""
    return collections.Counter(map(tuple, examples.sessions()))


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory) -> str:
    """The tiny sample with four periods (three cycles)."""
    from ader_tf.data.sample import write_sample_dataset
    from tests.helpers import TINY_SAMPLE

    folder = tmp_path_factory.mktemp("probe_data") / "sample"
    return write_sample_dataset(str(folder), dataclasses.replace(TINY_SAMPLE, num_periods=4))


def test_probes_are_a_seeded_share_of_each_periods_sessions(sample_dir):
    data = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=0)
    for period in range(data.num_periods):
        mask = data.probe_mask(period)
        assert mask.sum() == round(0.3 * len(data.sessions(period)))
        again = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=0)
        np.testing.assert_array_equal(again.probe_mask(period), mask)
        assert len(data.training_sessions(period)) == (~mask).sum()
        assert len(data.probe_sessions(period)) == mask.sum()
    other_seed = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=1)
    assert not np.array_equal(other_seed.probe_mask(1), data.probe_mask(1))
    assert not np.array_equal(data.probe_mask(0)[:40], data.probe_mask(1)[:40])
    assert not ContinualData(sample_dir, probe_fraction=0.0).probe_mask(0).any()


@pytest.mark.parametrize("joint", [False, True], ids=["one_period", "joint"])
def test_training_and_validation_hold_no_probe_session(sample_dir, joint):
    """Train and validation examples are exactly the prefixes of the periods' other sessions
    (as multisets: a probe session that repeats another's clicks would add rows)."""
    data = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=0)
    for cycle in range(1, data.num_cycles + 1):
        c = data.cycle(cycle, joint=joint)
        periods = range(cycle) if joint else [cycle - 1]
        kept = [data.sessions(p).select(~data.probe_mask(p)) for p in periods]
        expected = sum((_rows(examples_from_sessions(s, 6)) for s in kept), collections.Counter())
        assert _rows(c.train) + _rows(c.valid) == expected
        assert c.stats["probe_sessions_held_out"] == sum(data.probe_mask(p).sum()
                                                         for p in periods)
        # The test set is the whole next period, filtered by the items training saw.
        assert c.stats["test_clicks"] == data.sessions(cycle).num_clicks
        whole, _ = filter_test_sessions(data.sessions(cycle), data.seen_items(cycle))
        assert _rows(c.test) == _rows(examples_from_sessions(whole, 6))
        trained = np.unique(np.concatenate([s.items for s in
                                            (data.training_sessions(p) for p in range(cycle))]))
        np.testing.assert_array_equal(np.flatnonzero(data.seen_items(cycle)), trained)


def test_whole_session_training_holds_no_probe_session(sample_dir):
    data = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=0)
    sessions, valid = data.session_split(2, joint=True)
    allowed = collections.Counter(map(tuple, data.training_sessions(0).as_lists()
                                      + data.training_sessions(1).as_lists()))
    used = collections.Counter(map(tuple, sessions.as_lists()))
    assert not used - allowed
    assert len(sessions) + (allowed - used).total() == allowed.total()
    held_out = [s for s in (allowed - used).elements() if len(s) > 1]
    assert len(valid) == sum(len(s) - 1 for s in held_out)


def test_probe_examples_are_filtered_as_test_sets_are(sample_dir):
    data = ContinualData(sample_dir, maxlen=6, probe_fraction=0.3, seed=0)
    for cycle in (1, 3):
        probes = data.probe_examples(cycle)
        assert sorted(probes) == list(range(data.num_periods))
        seen = data.seen_items(cycle)
        for period, examples in probes.items():
            kept, _ = filter_test_sessions(data.probe_sessions(period), seen)
            assert _rows(examples) == _rows(examples_from_sessions(kept, 6))
            items = np.concatenate([examples.inputs.ravel(), examples.targets])
            assert seen[items[items > 0]].all()
    assert ContinualData(sample_dir, probe_fraction=0.0).probe_examples(2) == {}


def test_without_probes_every_array_is_the_protocols(sample_dir):
    plain = ContinualData(sample_dir, maxlen=6, seed=3)
    zero = ContinualData(sample_dir, maxlen=6, seed=3, probe_fraction=0.0)
    for cycle in (1, 2):
        a, b = plain.cycle(cycle, joint=True), zero.cycle(cycle, joint=True)
        for part in ("train", "valid", "test"):
            np.testing.assert_array_equal(getattr(a, part).inputs, getattr(b, part).inputs)
            np.testing.assert_array_equal(getattr(a, part).targets, getattr(b, part).targets)
        assert a.stats == b.stats and "probe_sessions_held_out" not in b.stats


@pytest.mark.parametrize("fraction", [-0.1, 1.0, float("nan")])
def test_a_probe_fraction_outside_0_1_is_refused(toy_dir, fraction):
    with pytest.raises(ValueError, match=r"probe_fraction must be in \[0, 1\)"):
        ContinualData(toy_dir, probe_fraction=fraction)
