"""tf.data batches: trimmed width keeps absolute positions, exemplar rows, seeding."""

import gc
import weakref

import numpy as np

from ader_tf.data.examples import Examples
from ader_tf.data.pipeline import (
    evaluation_batches,
    evaluation_dataset,
    exemplars_per_batch,
    training_batches,
    training_dataset,
)


def _examples(rng, n, maxlen=10, max_item=30):
    lengths = rng.integers(1, maxlen + 1, size=n)
    inputs = np.zeros((n, maxlen), np.int32)
    for r, length in enumerate(lengths):
        inputs[r, maxlen - length:] = rng.integers(1, max_item + 1, size=length)
    return Examples(inputs, rng.integers(1, max_item + 1, size=n).astype(np.int32))


def test_batches_cover_epoch_once_and_are_trimmed(rng):
    train = _examples(rng, 103)
    seen = []
    for features, targets in training_batches(train, 25, np.random.default_rng(1)):
        ids = features["item_ids"]
        width = ids.shape[1]
        assert width == max(np.count_nonzero(ids, axis=1))
        assert (features["is_exemplar"] == 0).all()
        assert (features["exemplar_index"] == -1).all()
        full = np.zeros((len(ids), train.maxlen), np.int32)
        full[:, train.maxlen - width:] = ids  # re-padding restores the original rows
        seen.extend(zip(map(tuple, full), targets))
    assert len(seen) == 103
    assert sorted(seen) == sorted(zip(map(tuple, train.inputs), train.targets))


def test_exemplar_rows_follow_current_rows(rng):
    train, exemplars = _examples(rng, 100), _examples(rng, 45)
    batches = list(training_batches(train, 32, np.random.default_rng(0), exemplars))
    assert len(batches) == 4
    for features, _ in batches:
        flags = features["is_exemplar"]
        assert flags.sum() == 45 // 4
        assert (np.diff(flags) >= 0).all()  # zeros first, then ones


def test_exemplar_index_points_at_the_exemplar_row(rng):
    train, exemplars = _examples(rng, 100), _examples(rng, 45)
    batches = list(training_batches(train, 32, np.random.default_rng(0), exemplars))
    used = []
    for features, targets in batches:
        index, flags = features["exemplar_index"], features["is_exemplar"]
        ids = features["item_ids"]
        assert index.dtype == np.int32 and index.shape == targets.shape
        assert (index[flags == 0] == -1).all() and (index[flags == 1] >= 0).all()
        width = ids.shape[1]
        for row in np.flatnonzero(flags == 1):
            assert targets[row] == exemplars.targets[index[row]]
            np.testing.assert_array_equal(ids[row], exemplars.inputs[index[row], -width:])
            assert not exemplars.inputs[index[row], :-width].any()  # nothing cut off
        used.extend(index[flags == 1].tolist())
    assert len(used) == len(set(used)) == 4 * (45 // 4)  # no exemplar twice in an epoch
    # The draws are unchanged: one permutation of the current rows, then one of the exemplars.
    draws = np.random.default_rng(0)
    order, exemplar_order = draws.permutation(100), draws.permutation(45)
    np.testing.assert_array_equal(batches[0][1][:32], train.targets[order[:32]])
    assert used == exemplar_order[: len(used)].tolist()
    for features, _ in evaluation_batches(train, 16):
        assert (features["exemplar_index"] == -1).all()
    # tf.data carries the index through (the dataset's signature declares it).
    first, _ = next(iter(training_dataset(train, 32, 0, exemplars)))
    assert first["exemplar_index"].dtype == "int32"
    assert (first["exemplar_index"].numpy()[32:] >= 0).all()


def test_exemplars_per_batch_never_zero_when_fewer_than_batches():
    assert exemplars_per_batch(10, 4).tolist() == [2, 2, 2, 2]
    assert exemplars_per_batch(3, 5).tolist() == [1, 1, 1, 0, 0]


def test_seed_fixes_the_order(rng):
    train = _examples(rng, 60)
    a = [t.numpy().tolist() for _, t in training_dataset(train, 16, [0, 1, 1])]
    b = [t.numpy().tolist() for _, t in training_dataset(train, 16, [0, 1, 1])]
    c = [t.numpy().tolist() for _, t in training_dataset(train, 16, [0, 1, 2])]
    assert a == b
    assert a != c


def test_evaluation_batches_sorted_by_length(rng):
    ex = _examples(rng, 50)
    widths = [f["item_ids"].shape[1] for f, _ in evaluation_batches(ex, 8)]
    assert widths == sorted(widths)
    assert sum(len(t) for _, t in evaluation_batches(ex, 8)) == 50


def test_datasets_run_without_autotuning(rng):
    """With autotuning on, closing an epoch's iterator waits out tf.data's model-thread sleep
    (up to tens of seconds of idle CPU per epoch; benchmarks/iterator_close.py)."""
    train = _examples(rng, 40)
    for dataset in (training_dataset(train, 16, 0), evaluation_dataset(train, 16)):
        assert dataset.options().autotune.enabled is False
        assert sum(len(t) for _, t in dataset) == 40


def test_a_dataset_keeps_its_examples_only_while_it_lives(rng):
    """TensorFlow keeps what `from_generator` is given for as long as the graph a dataset is
    built in; built eagerly, for the whole process. The examples a dataset reads must be
    freed with it, or every cycle's examples stay in memory until the run ends."""
    train = _examples(rng, 40)
    inputs = weakref.ref(train.inputs)
    dataset = training_dataset(train, 16, 0, _examples(rng, 9))  # 3 rows a batch
    assert sum(len(t) for _, t in dataset) == 40 + 9
    assert sum(len(t) for _, t in dataset) == 40 + 9  # iterable again while it lives
    iterator = iter(evaluation_dataset(train, 16))  # the iterator keeps its dataset
    del dataset, train
    gc.collect()
    assert sum(len(t) for _, t in iterator) == 40
    del iterator
    gc.collect()
    assert inputs() is None
