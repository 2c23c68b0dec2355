"""The training loop against the bare step it runs, on the same batches, in one run.

    python benchmarks/loop_overhead.py --data_dir=../shared/data/DIGINETICA [--batches=40]

Cycle 1 of DIGINETICA as the runner trains it (its `build_model`, its `training_dataset`,
batches of 256 shuffled prefix examples; --batches of them, drawn from the cycle's training
examples), timed three ways in each round, in an order that turns round by round:
- `loop`: one `fit` epoch over the runner's `training_dataset` (the Python generator that
  assembles each batch, prefetch 2, autotuning off) with the runner's progress callback,
  disabled as under --noprogress: what `ContinualRunner._fit_epoch` runs;
- `loop_no_callback`: the same `fit` without the callback;
- `step`: the compiled train function `fit` calls (`model.train_function`), called once per
  batch on the same batches, built beforehand as tensors: no input pipeline, no callbacks.
Printed: milliseconds per batch, median and range over the rounds, and `loop / step` (the
target: at most 1.10). The last line is one JSON object.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.continual.learners.neural import ORIGINAL_TABLE_ITEMS  # noqa: E402
from ader_tf.continual.progress import ProgressBar  # noqa: E402
from ader_tf.data.cycles import ContinualData  # noqa: E402
from ader_tf.data.pipeline import training_batches, training_dataset  # noqa: E402
from ader_tf.models.factory import build_model  # noqa: E402
from ader_tf.objectives import CrossEntropy  # noqa: E402
from ader_tf.plugins import make_config  # noqa: E402
from benchmarks.interleaved import spread  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", None, "DIGINETICA's period files.")
_BATCHES = flags.DEFINE_integer("batches", 40, "Batches per timed epoch.")
_ROUNDS = flags.DEFINE_integer("rounds", 5, "Rounds of the three timings.")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 256, "Rows per batch.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the model and of the rows drawn.")


def timed(fn) -> float:
    """Seconds ``fn()`` took."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str]) -> None:
    del argv
    config = make_config(dataset="DIGINETICA", batch_size=_BATCH_SIZE.value,
                         random_seed=_SEED.value)
    data = ContinualData(_DATA_DIR.value, config.maxlen, seed=_SEED.value).cycle(1)
    rng = np.random.default_rng(_SEED.value)
    rows = rng.choice(len(data.train), _BATCHES.value * _BATCH_SIZE.value, replace=False)
    train = data.train.subset(np.sort(rows))
    model = build_model(config, data.max_item, config.dropout_rate, _SEED.value,
                        ORIGINAL_TABLE_ITEMS["DIGINETICA"])
    model.set_max_item(data.max_item)
    model.set_objective(CrossEntropy())

    epoch_seed = [_SEED.value, 1, 1]
    dataset = training_dataset(train, _BATCH_SIZE.value, epoch_seed)
    batches = [tf.nest.map_structure(tf.constant, b) for b in
               training_batches(train, _BATCH_SIZE.value, np.random.default_rng(epoch_seed))]
    n = len(batches)

    def loop() -> None:  # with the callback the runner attaches to every epoch
        bar = ProgressBar(n, "loop", enabled=False)
        model.fit(dataset, epochs=1, verbose=0, callbacks=[bar], shuffle=False)

    def loop_no_callback() -> None:
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)

    def step() -> None:
        for batch in batches:
            model.train_function(iter([batch]))

    ways = {"loop": loop, "loop_no_callback": loop_no_callback, "step": step}
    for fn in ways.values():  # warm-up: traces for the batches' widths, tf.data's threads
        fn()
    ms: dict[str, list[float]] = {name: [] for name in ways}
    for r in range(_ROUNDS.value):
        names = list(ways)[r % 3:] + list(ways)[:r % 3]
        for name in names:
            ms[name].append(timed(ways[name]) / n * 1e3)
    ratio = [a / b for a, b in zip(ms["loop"], ms["step"])]
    ratio_plain = [a / b for a, b in zip(ms["loop_no_callback"], ms["step"])]
    print(f"{n} batches of {_BATCH_SIZE.value}, {_ROUNDS.value} rounds (ms per batch)")
    for name, values in ms.items():
        s = spread(values)
        print(f"  {name:18s} median {s['median']:7.2f}  range {s['min']:.2f}-{s['max']:.2f}")
    print(f"  loop / step       median {np.median(ratio):.3f}  range "
          f"{min(ratio):.3f}-{max(ratio):.3f}  (target 1.10)")
    result = {name: spread(values) for name, values in ms.items()}
    result["loop_over_step"] = spread(ratio)
    result["loop_no_callback_over_step"] = spread(ratio_plain)
    result["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    result["settings"] = {"batches": n, "batch_size": _BATCH_SIZE.value,
                          "max_item": data.max_item, "seed": _SEED.value}
    print(json.dumps(result))


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir"])
    app.run(main)
