"""Times the training step at DIGINETICA cycle-1 and cycle-2 shapes on real period_0 examples.

Usage:
    python benchmarks/train_step.py --data_dir=../shared/data/DIGINETICA [--steps=30]

Cycle 1: batches of 256 examples, plain cross-entropy over items 1..max(period_0).
Cycle 2: 256 current rows + 264 exemplar rows, distillation from a frozen teacher over the
cycle-1 items, student scoring over items 1..max(period_0, period_1).
Model: d=150, maxlen 50, 2 blocks, 1 head, dropout 0.3. The item table is sized as the runner
sizes it: max_item + 1 rows at cycle 1, grown (`grow_items`) to cycle 2's max_item + 1 rows,
with the initialiser limit of DIGINETICA's 43,136 items (`--num_items` fixes one size instead;
the original's table had 43,136 + 1 rows at every cycle).
The last line printed is one JSON object:
    {"cycle1": {"examples_per_second": ...}, "cycle2": {"examples_per_second": ...}, ...}
(rows of both kinds counted). The reference runs 405 (cycle 1) and 356 (cycle 2) rows/s on
the 2-core machine (../shared/parity/reference_runs/README.md).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.continual.teacher import frozen_teacher  # noqa: E402
from ader_tf.models.growth import grow_items  # noqa: E402
from ader_tf.models.recommender import SessionRecommender, make_optimizer  # noqa: E402
from ader_tf.models.sasrec import SASRecEncoder  # noqa: E402
from ader_tf.objectives import CrossEntropy, Distillation, combine  # noqa: E402

_DATA_DIR = flags.DEFINE_string("data_dir", None, "Folder with period_0.txt, period_1.txt.")
_STEPS = flags.DEFINE_integer("steps", 30, "Timed steps per cycle (after warm-up).")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed passes; the median is reported.")
_WARMUP = flags.DEFINE_integer("warmup", 3, "Untimed steps per cycle (tracing, allocation).")
_NUM_ITEMS = flags.DEFINE_integer(
    "num_items", 0, "Item table size at both cycles (0: max_item, as the runner's tables).")
_INIT_ITEMS = 43136  # DIGINETICA's item count: the runner's ORIGINAL_TABLE_ITEMS
_TRIM = flags.DEFINE_bool("trim_padding", True, "Trim all-padding columns per batch.")
_GROUPS = flags.DEFINE_integer("length_groups", 4, "Length-sorted row groups per batch.")
_THREADS = flags.DEFINE_integer("threads", 0, "intra/inter-op threads (0: TensorFlow default).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for batch sampling and initialisation.")

MAXLEN, BATCH, EXEMPLAR_ROWS = 50, 256, 264
REFERENCE = {"cycle1": 405.0, "cycle2": 356.0}


def period_examples(path: str, maxlen: int = MAXLEN) -> tuple[np.ndarray, np.ndarray, int]:
    """Every prefix (length >= 2) of every session: (inputs [N, maxlen], targets [N], max item)."""
    clicks = pd.read_csv(path, sep=" ", header=None, names=["session", "item"], dtype=np.int64)
    inputs, targets = [], []
    for _, items in clicks.groupby("session", sort=False)["item"]:
        items = items.to_numpy()
        for end in range(1, len(items)):
            row = np.zeros(maxlen, np.int32)
            history = items[max(0, end - maxlen) : end]
            row[maxlen - len(history) :] = history
            inputs.append(row)
            targets.append(items[end])
    return np.stack(inputs), np.asarray(targets, np.int32), int(clicks["item"].max())


def build_model(num_items: int, seed: int) -> SessionRecommender:
    encoder = SASRecEncoder(
        num_items,
        150,
        MAXLEN,
        2,
        1,
        dropout_rate=0.3,
        seed=seed,
        init_items=_INIT_ITEMS,
        trim_padding=_TRIM.value,
        length_groups=_GROUPS.value,
    )
    model = SessionRecommender(encoder)
    model.compile(optimizer=make_optimizer(5e-4))
    model.build_all(MAXLEN)
    return model


def time_fit(model: SessionRecommender, batches: list[tuple[dict, np.ndarray]]) -> list[float]:
    """Seconds per step of `fit` over `batches` after warm-up, for each timed pass.

    The machine is shared, so the median of a few passes is reported rather than one pass.
    """

    def dataset(items: list) -> tf.data.Dataset:
        features = {k: np.stack([b[0][k] for b in items]) for k in items[0][0]}
        targets = np.stack([b[1] for b in items])
        # Autotuning off, as the runner's pipeline (data/pipeline.py): with it on, closing the
        # iterator at the end of each `fit` waits for the autotuning thread's doubling sleep,
        # so a pass took 5.12 s or 10.24 s whatever the steps needed (1,000 rows/s exactly).
        options = tf.data.Options()
        options.autotune.enabled = False
        dataset = tf.data.Dataset.from_tensor_slices((features, targets)).prefetch(2)
        return dataset.with_options(options)

    model.fit(dataset(batches[: _WARMUP.value]), epochs=1, verbose=0)
    timed = dataset(batches[_WARMUP.value :])
    seconds = []
    for _ in range(_REPEATS.value):
        start = time.perf_counter()
        model.fit(timed, epochs=1, verbose=0)
        seconds.append((time.perf_counter() - start) / (len(batches) - _WARMUP.value))
    return seconds


def main(argv: list[str]) -> None:
    del argv
    if _THREADS.value:
        tf.config.threading.set_intra_op_parallelism_threads(_THREADS.value)
        tf.config.threading.set_inter_op_parallelism_threads(_THREADS.value)
    inputs, targets, max_item_1 = period_examples(os.path.join(_DATA_DIR.value, "period_0.txt"))
    _, _, max_item_p1 = period_examples(os.path.join(_DATA_DIR.value, "period_1.txt"))
    max_item_2 = max(max_item_1, max_item_p1)
    rng = np.random.default_rng(_SEED.value)
    steps = _WARMUP.value + _STEPS.value

    def sample(rows: int) -> tuple[np.ndarray, np.ndarray]:
        index = rng.choice(len(targets), rows, replace=False)
        return inputs[index], targets[index]

    # === Cycle 1: plain cross-entropy ===
    model = build_model(_NUM_ITEMS.value or max_item_1, _SEED.value)
    model.set_max_item(max_item_1)
    batches, widths = [], []
    for _ in range(steps):
        ids, tgt = sample(BATCH)
        batches.append(({"item_ids": ids, "is_exemplar": np.zeros(BATCH, np.float32)}, tgt))
        widths.append(int((ids != 0).sum(1).max()))
    cycle1_runs = [BATCH / t for t in time_fit(model, batches)]
    cycle1 = float(np.median(cycle1_runs))

    # === Cycle 2: current rows + exemplar rows distilled from the cycle-1 model ===
    teacher = frozen_teacher(model, max_item_1)
    model = grow_items(model, max(_NUM_ITEMS.value, max_item_2))
    model.set_max_item(max_item_2)
    model.set_objective(combine(CrossEntropy(), Distillation(teacher, 0.5)))
    rows = BATCH + EXEMPLAR_ROWS
    is_exemplar = np.concatenate([np.zeros(BATCH), np.ones(EXEMPLAR_ROWS)]).astype(np.float32)
    batches = []
    for _ in range(steps):
        ids, tgt = sample(rows)
        batches.append(({"item_ids": ids, "is_exemplar": is_exemplar}, tgt))
    cycle2_runs = [rows / t for t in time_fit(model, batches)]
    cycle2 = float(np.median(cycle2_runs))

    result = {
        "cycle1": {
            "examples_per_second": round(cycle1, 1),
            "passes": [round(r, 1) for r in cycle1_runs],
        },
        "cycle2": {
            "examples_per_second": round(cycle2, 1),
            "passes": [round(r, 1) for r in cycle2_runs],
        },
        "speedup_vs_reference": {
            "cycle1": round(cycle1 / REFERENCE["cycle1"], 2),
            "cycle2": round(cycle2 / REFERENCE["cycle2"], 2),
        },
        "settings": {
            "max_item": [max_item_1, max_item_2],
            "table_items": [_NUM_ITEMS.value or max_item_1, max(_NUM_ITEMS.value, max_item_2)],
            "trim_padding": _TRIM.value,
            "length_groups": _GROUPS.value,
            "threads": _THREADS.value or "default",
            "steps": _STEPS.value,
            "cycle1_batch_width_mean": round(float(np.mean(widths)), 1),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir"])
    app.run(main)
