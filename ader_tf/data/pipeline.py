"""tf.data pipelines: shuffled training batches (optionally with exemplar rows) and evaluation.

Every batch is padded only to its longest input: columns are the last ``L`` of the
``maxlen`` window, so positions stay absolute (the last input item is at ``maxlen - 1``) and
the model computes exactly what it would on 50-wide rows.

Batch structure (shared by training and evaluation)::

    features = {"item_ids": int32 [B, L], "is_exemplar": float32 [B], "exemplar_index": int32 [B]}
    targets  = int32 [B]

Current-period rows come first, exemplar rows (``is_exemplar == 1``) after them. An exemplar
row's ``exemplar_index`` is its row in the exemplar set, so a method can look up values it
stored per exemplar (teacher logits, say); current-period and evaluation rows have -1.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator

import numpy as np
import tensorflow as tf

from ader_tf.data.examples import Examples

Batch = tuple[dict[str, np.ndarray], np.ndarray]


def batch_signature() -> tuple[dict[str, tf.TensorSpec], tf.TensorSpec]:
    """The element spec of every dataset here (width and batch size vary)."""
    return (
        {
            "item_ids": tf.TensorSpec([None, None], tf.int32),
            "is_exemplar": tf.TensorSpec([None], tf.float32),
            "exemplar_index": tf.TensorSpec([None], tf.int32),
        },
        tf.TensorSpec([None], tf.int32),
    )


def exemplars_per_batch(num_exemplars: int, num_batches: int) -> np.ndarray:
    """How many exemplar rows each training batch carries.

    The original gives every batch ``int(|E| / num_batches)`` rows, so one epoch passes over
    the exemplar set about once. Where that is 0 (fewer exemplars than batches) the original
    divides by zero; here the exemplars are then spread one per batch over the first batches.
    """
    if num_batches <= 0:
        return np.zeros(0, dtype=np.int64)
    per_batch = num_exemplars // num_batches
    if per_batch > 0:
        return np.full(num_batches, per_batch, dtype=np.int64)
    counts = np.zeros(num_batches, dtype=np.int64)
    counts[:num_exemplars] = 1
    return counts


def batch_count(num_examples: int, batch_size: int) -> int:
    """Batches per epoch: the last one may be smaller (as the original)."""
    return -(-num_examples // batch_size)


def _assemble(
    rows: Examples,
    exemplars: Examples | None = None,
    exemplar_index: np.ndarray | None = None,
) -> Batch:
    """One batch: the current rows, then the exemplar rows at ``exemplar_index``.

    Columns are trimmed to the batch's longest input; ``exemplar_index`` is -1 on current rows.
    """
    parts = [rows]
    if exemplars is not None and exemplar_index is not None and len(exemplar_index):
        parts.append(exemplars.subset(exemplar_index))
    inputs = np.concatenate([p.inputs for p in parts])
    targets = np.concatenate([p.targets for p in parts]).astype(np.int32)
    is_exemplar = np.zeros(len(targets), dtype=np.float32)
    is_exemplar[len(rows):] = 1.0
    index = np.full(len(targets), -1, dtype=np.int32)  # -1: not an exemplar row
    if len(parts) > 1:
        index[len(rows):] = exemplar_index
    width = max(int(np.count_nonzero(inputs, axis=1).max(initial=1)), 1)
    item_ids = np.ascontiguousarray(inputs[:, inputs.shape[1] - width:], dtype=np.int32)
    return {"item_ids": item_ids, "is_exemplar": is_exemplar, "exemplar_index": index}, targets


def training_batches(
    train: Examples,
    batch_size: int,
    rng: np.random.Generator,
    exemplars: Examples | None = None,
) -> Iterator[Batch]:
    """One epoch of shuffled training batches, each with its share of shuffled exemplars.

    Each batch's ``exemplar_index`` gives its exemplar rows' positions in ``exemplars``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = rng.permutation(len(train))
    num_batches = batch_count(len(train), batch_size)
    if exemplars is not None and len(exemplars):
        exemplar_order = rng.permutation(len(exemplars))
        counts = exemplars_per_batch(len(exemplars), num_batches)
    else:
        exemplar_order, counts = np.zeros(0, np.int64), np.zeros(num_batches, np.int64)
    ex_starts = np.concatenate([[0], np.cumsum(counts)])
    for b in range(num_batches):
        rows = train.subset(order[b * batch_size:(b + 1) * batch_size])
        yield _assemble(rows, exemplars, exemplar_order[ex_starts[b]:ex_starts[b + 1]])


def evaluation_batches(examples: Examples, batch_size: int) -> Iterator[Batch]:
    """Batches in order of input length, so that each batch carries little padding.

    The order of evaluation does not change any metric; use ``evaluation_order`` to map
    per-row results back to ``examples``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    order = evaluation_order(examples)
    for lo in range(0, len(examples), batch_size):
        yield _assemble(examples.subset(order[lo:lo + batch_size]))


def evaluation_order(examples: Examples) -> np.ndarray:
    """The row order ``evaluation_batches`` uses (stable sort by input length)."""
    return np.argsort(examples.lengths, kind="stable")


class _HeldByDataset:
    """Calls ``make_iterator``, which only the dataset built on this object keeps alive.

    ``tf.data.Dataset.from_generator`` registers its generator function with the outermost
    graph it is built in, to keep it alive as long as that graph. Built eagerly, that graph is
    the process's default graph, which is never freed: every dataset made would keep its
    generator function, and with it the examples that function reads (each cycle's training,
    validation and test examples, the exemplar candidates), until the process ends. On
    DIGINETICA that was about 27 MB more per cycle. TensorFlow keeps this small object
    instead; `_to_dataset` gives the dataset the strong reference, and TensorFlow's own
    iterators keep their dataset alive while they run (for this very reason), so the
    generator function lives exactly as long as the dataset or an iterator over it.
    """

    def __init__(self, make_iterator: Callable[[], Iterator[Batch]]) -> None:
        self._make_iterator = weakref.ref(make_iterator)

    def __call__(self) -> Iterator[Batch]:
        make_iterator = self._make_iterator()
        if make_iterator is None:  # not reachable through TensorFlow's own iterators
            raise RuntimeError("the batches' dataset was freed before it was iterated")
        return make_iterator()


def _to_dataset(make_iterator: Callable[[], Iterator[Batch]], num_batches: int,
                prefetch: int = 2) -> tf.data.Dataset:
    """A prefetching dataset of the batches ``make_iterator()`` yields, ``num_batches`` of them.

    Only the returned dataset (and iterators over it) keep ``make_iterator`` and what it
    reads alive; see `_HeldByDataset`.
    """
    dataset = tf.data.Dataset.from_generator(
        _HeldByDataset(make_iterator), output_signature=batch_signature())
    # A known length lets Keras size its loop and progress without "ran out of data" noise.
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(num_batches))
    dataset = dataset.prefetch(prefetch).with_options(untuned_options())
    # Datasets built on this one (Keras', a strategy's) hold it as their input.
    dataset._ader_make_iterator = make_iterator
    return dataset


def untuned_options() -> tf.data.Options:
    """Options with tf.data's autotuning off.

    Nothing here has a tunable parameter (one generator, a fixed prefetch). With autotuning on,
    tf.data runs a model thread whose waits double (10 ms, 20 ms, 40 ms, ...), and closing the
    iterator at the end of ``fit`` waits for the current wait to end, so an epoch ends only near
    20.5 s, 41.0 s, 81.9 s, ... after it started, the CPU idle meanwhile: epochs of the full
    DIGINETICA run that needed about 52 s took 83.4 s (``benchmarks/iterator_close.py``).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return options


def training_dataset(
    train: Examples,
    batch_size: int,
    seed: int | list[int] | np.random.SeedSequence,
    exemplars: Examples | None = None,
) -> tf.data.Dataset:
    """One epoch of training batches as a prefetching ``tf.data.Dataset``.

    Args:
        train: the current period's training examples.
        batch_size: current-period rows per batch.
        seed: seeds this epoch's shuffling (a run passes its ``shuffle`` stream of the cycle
            and epoch), so that a resumed run draws the same batches.
        exemplars: exemplar rows to mix in (ADER and ER), or None.
    """
    return _to_dataset(
        lambda: training_batches(train, batch_size, np.random.default_rng(seed), exemplars),
        batch_count(len(train), batch_size),
    )


def evaluation_dataset(examples: Examples, batch_size: int) -> tf.data.Dataset:
    """Evaluation batches (length-sorted, see ``evaluation_batches``) as a tf.data.Dataset."""
    return _to_dataset(
        lambda: evaluation_batches(examples, batch_size), batch_count(len(examples), batch_size)
    )
