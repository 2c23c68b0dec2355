"""How long `fit` waits after its last batch, with tf.data autotuning off (ours) and on.

    python benchmarks/iterator_close.py [--batches=300 --passes=2]

One epoch of `fit` on the project's `training_dataset` (random short sessions, SASRec at
DIGINETICA's sizes: d=150, 40,000 items, batches of 256) is timed from its start to its last
batch and to its return. With autotuning on, tf.data runs a model thread that waits between
optimisations for periods that double; closing the epoch's iterator waits for that wait to end,
so `fit` returns only at the next end of a period (about 10 ms x (2^k - 1): 20.5 s, 41.0 s,
81.9 s, ...), the CPU idle meanwhile. The pipeline turns autotuning off; this script turns it
back on for comparison, in the same process and alternating, because the machine is shared.

Printed: one line per pass, then one JSON line with, per setting, the median seconds from the
last batch to the return of `fit` and the median whole-epoch seconds, and their ratio.
"""

from __future__ import annotations

import json
import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.data.examples import Examples  # noqa: E402
from ader_tf.data.pipeline import training_dataset  # noqa: E402
from ader_tf.models.recommender import SessionRecommender, make_optimizer  # noqa: E402
from ader_tf.models.sasrec import SASRecEncoder  # noqa: E402

_BATCHES = flags.DEFINE_integer("batches", 300, "Batches of 256 per epoch.")
_PASSES = flags.DEFINE_integer("passes", 2, "Epochs per setting (alternating).")
_ITEMS = flags.DEFINE_integer("items", 40000, "Items scored.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for the random sessions and the model.")

MAXLEN, BATCH = 50, 256


def random_examples(rows: int, items: int, seed: int) -> Examples:
    """Sessions of 1-8 clicks (DIGINETICA's inputs average about 4), right-aligned."""
    rng = np.random.default_rng(seed)
    inputs = np.zeros((rows, MAXLEN), np.int32)
    lengths = rng.integers(1, 9, rows)
    for row, length in enumerate(lengths):
        inputs[row, MAXLEN - length :] = rng.integers(1, items + 1, length)
    return Examples(inputs, rng.integers(1, items + 1, rows).astype(np.int32))


class _LastBatch(keras.callbacks.Callback):
    """Remembers when the last batch ended."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.ended = time.perf_counter()


def time_epoch(model: SessionRecommender, dataset: tf.data.Dataset) -> tuple[float, float]:
    """(seconds of the whole `fit`, seconds from its last batch to its return)."""
    last = _LastBatch()
    start = time.perf_counter()
    model.fit(dataset, epochs=1, verbose=0, callbacks=[last], shuffle=False)
    returned = time.perf_counter()
    return returned - start, returned - last.ended


def main(argv: list[str]) -> None:
    del argv
    items = _ITEMS.value
    train = random_examples(_BATCHES.value * BATCH, items, _SEED.value)
    encoder = SASRecEncoder(items, 150, MAXLEN, 2, 1, dropout_rate=0.3, seed=_SEED.value)
    model = SessionRecommender(encoder)
    model.compile(optimizer=make_optimizer(5e-4))
    model.build_all(MAXLEN)
    model.set_max_item(items)
    warmup = training_dataset(train.subset(np.arange(4 * BATCH)), BATCH, 0)
    model.fit(warmup, verbose=0, shuffle=False)

    autotune_on = tf.data.Options()
    autotune_on.autotune.enabled = True
    results: dict[str, dict[str, list[float]]] = {
        setting: {"epoch_s": [], "after_last_batch_s": []} for setting in ("off", "on")
    }
    for epoch in range(_PASSES.value):
        for setting in ("off", "on"):
            dataset = training_dataset(train, BATCH, [_SEED.value, epoch])
            if setting == "on":
                dataset = dataset.with_options(autotune_on)
            whole, after = time_epoch(model, dataset)
            results[setting]["epoch_s"].append(whole)
            results[setting]["after_last_batch_s"].append(after)
            print(f"autotune {setting}: epoch {whole:.2f} s, after the last batch {after:.3f} s",
                  flush=True)

    summary = {
        setting: {key: round(float(np.median(values)), 3) for key, values in timings.items()}
        for setting, timings in results.items()
    }
    summary["epoch_ratio_on_over_off"] = round(
        summary["on"]["epoch_s"] / summary["off"]["epoch_s"], 2
    )
    summary["settings"] = {"batches": _BATCHES.value, "batch": BATCH, "items": items,
                           "passes": _PASSES.value}
    print(json.dumps(summary))


if __name__ == "__main__":
    app.run(main)
