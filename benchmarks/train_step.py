"""Times the training step at DIGINETICA cycle-1 and cycle-2 shapes on real period_0 examples.

Usage:
    python benchmarks/train_step.py --data_dir=../shared/data/DIGINETICA [--steps=30]

Cycle 1: batches of 256 examples, plain cross-entropy over items 1..max(period_0).
Cycle 2: 256 current rows + 264 exemplar rows, distillation from a frozen teacher over the
cycle-1 items, student scoring over items 1..max(period_0, period_1). As in the runner
(continual/methods/ader.py), the teacher's session vectors of the exemplar rows are computed once
per cycle (`Distillation.cache_teacher_vectors`, untimed) and the step scores them
(`--cache_teacher_vectors=false` runs the teacher's encoder on the exemplar rows of every step).
Model: d=150, maxlen 50, 2 blocks, 1 head, dropout 0.3. The item table is sized as the runner
sizes it: max_item + 1 rows at cycle 1, grown (`grow_items`) to cycle 2's max_item + 1 rows,
with the initialiser limit of DIGINETICA's 43,136 items (`--num_items` fixes one size instead;
the original's table had 43,136 + 1 rows at every cycle).
The last line printed is one JSON object:
    {"cycle1": {"examples_per_second": ...}, "cycle2": {"examples_per_second": ...}, ...}
(rows of both kinds counted). The reference runs 405 (cycle 1) and 356 (cycle 2) rows/s on
the 2-core machine (../shared/parity/reference_runs/README.md) on another day;
benchmarks/original_step.py times the original and this step in one run, interleaved, on the
batches and models built here (`sample_batches`, `cycle1_model`, `cycle2_model`).
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

from ader_tf.continual.learners.neural import ORIGINAL_TABLE_ITEMS  # noqa: E402
from ader_tf.continual.teacher import frozen_teacher  # noqa: E402
from ader_tf.data.pipeline import untuned_options  # noqa: E402
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
_TRIM = flags.DEFINE_bool("trim_padding", True, "Trim all-padding columns per batch.")
_GROUPS = flags.DEFINE_integer("length_groups", 4, "Length-sorted row groups per batch.")
_THREADS = flags.DEFINE_integer("threads", 0, "intra/inter-op threads (0: TensorFlow default).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for batch sampling and initialisation.")
_CACHE = flags.DEFINE_bool(
    "cache_teacher_vectors", True,
    "Cycle 2: score cached teacher vectors of the exemplar rows, as the runner does.")

MAXLEN, BATCH, EXEMPLAR_ROWS = 50, 256, 264
KD_WEIGHT, LEARNING_RATE = 0.5, 5e-4
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


def sample_batches(
    inputs: np.ndarray, targets: np.ndarray, steps: int, seed: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Rows drawn from the examples, without replacement within a batch.

    Returns {"cycle1": (ids [steps, 256, maxlen], targets [steps, 256]), "cycle2": (ids [steps,
    520, maxlen], targets [steps, 520])}; a cycle-2 batch's first 256 rows are its current
    rows, the other 264 its exemplar rows.
    """
    rng = np.random.default_rng(seed)
    batches = {}
    for cycle, rows in (("cycle1", BATCH), ("cycle2", BATCH + EXEMPLAR_ROWS)):
        index = np.stack([rng.choice(len(targets), rows, replace=False) for _ in range(steps)])
        batches[cycle] = (inputs[index], targets[index])
    return batches


def cycle1_features(ids: np.ndarray) -> list[dict[str, np.ndarray]]:
    """Features of cycle-1 batches ids [steps, 256, L]: every row current."""
    is_current = np.zeros(BATCH, np.float32)
    return [{"item_ids": batch, "is_exemplar": is_current} for batch in ids]


def cycle2_features(ids: np.ndarray, indexed: bool = True) -> list[dict[str, np.ndarray]]:
    """Features of cycle-2 batches ids [steps, 520, L]. With ``indexed`` (cached teacher
    vectors), the exemplar rows of batch i are rows i * 264 .. (i + 1) * 264 - 1 of the
    exemplar set (`exemplar_set`), given as ``exemplar_index``."""
    is_exemplar = np.r_[np.zeros(BATCH), np.ones(EXEMPLAR_ROWS)].astype(np.float32)
    features = [{"item_ids": batch, "is_exemplar": is_exemplar} for batch in ids]
    if indexed:
        for i, f in enumerate(features):
            f["exemplar_index"] = np.r_[
                np.full(BATCH, -1), i * EXEMPLAR_ROWS + np.arange(EXEMPLAR_ROWS)
            ].astype(np.int32)
    return features


def exemplar_set(ids: np.ndarray) -> np.ndarray:
    """The exemplar rows of cycle-2 batches ids [steps, 520, L], batch by batch."""
    return ids[:, BATCH:].reshape(-1, ids.shape[-1])


def cycle1_model(
    num_items: int, max_item: int, seed: int, trim_padding: bool = True, length_groups: int = 4
) -> SessionRecommender:
    """The cycle-1 model: d=150, maxlen 50, 2 blocks, 1 head, dropout 0.3, plain cross-entropy
    over items 1..max_item, `num_items + 1` table rows initialised as for 43,136 items."""
    encoder = SASRecEncoder(
        num_items,
        150,
        MAXLEN,
        2,
        1,
        dropout_rate=0.3,
        seed=seed,
        init_items=ORIGINAL_TABLE_ITEMS["DIGINETICA"],
        trim_padding=trim_padding,
        length_groups=length_groups,
    )
    model = SessionRecommender(encoder)
    model.compile(optimizer=make_optimizer(LEARNING_RATE))
    model.build_all(MAXLEN)
    model.set_max_item(max_item)
    return model


def cycle2_model(
    model: SessionRecommender,
    max_item_1: int,
    max_item_2: int,
    num_items: int = 0,
    exemplars: np.ndarray | None = None,
) -> SessionRecommender:
    """The cycle-2 student: ``model`` grown to max(num_items, max_item_2) items, scoring items
    1..max_item_2, cross-entropy plus distillation from ``model`` frozen (items 1..max_item_1).

    With ``exemplars`` (the exemplar set, [E, L]) the teacher's vectors of those rows are
    cached, as the runner does at each cycle's start; batches then need ``exemplar_index``.
    """
    teacher = frozen_teacher(model, max_item_1)
    model = grow_items(model, max(num_items, max_item_2))
    model.set_max_item(max_item_2)
    distillation = Distillation(teacher, KD_WEIGHT)
    if exemplars is not None:
        distillation.cache_teacher_vectors(exemplars)
    model.set_objective(combine(CrossEntropy(), distillation))
    return model


def fit_dataset(batches: list[tuple[dict, np.ndarray]]) -> tf.data.Dataset:
    """The batches (features, targets) as a dataset for `fit`, one element per batch."""
    features = {k: np.stack([b[0][k] for b in batches]) for k in batches[0][0]}
    targets = np.stack([b[1] for b in batches])
    # Autotuning off, as in the runner's pipeline: with it on, closing the iterator at the end
    # of each `fit` waits for the autotuning thread's doubling sleep, so a pass took 5.12 s or
    # 10.24 s whatever the steps needed (1,000 rows/s exactly).
    dataset = tf.data.Dataset.from_tensor_slices((features, targets)).prefetch(2)
    return dataset.with_options(untuned_options())


def time_fit(model: SessionRecommender, batches: list[tuple[dict, np.ndarray]]) -> list[float]:
    """Seconds per step of `fit` over `batches` after warm-up, for each timed pass.

    The machine is shared, so the median of a few passes is reported rather than one pass.
    """
    model.fit(fit_dataset(batches[: _WARMUP.value]), epochs=1, verbose=0)
    timed = fit_dataset(batches[_WARMUP.value :])
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
    batches = sample_batches(inputs, targets, _WARMUP.value + _STEPS.value, _SEED.value)

    # === Cycle 1: plain cross-entropy ===
    model = cycle1_model(_NUM_ITEMS.value or max_item_1, max_item_1, _SEED.value,
                         _TRIM.value, _GROUPS.value)
    ids, tgt = batches["cycle1"]
    widths = (ids != 0).sum(2).max(1)
    cycle1_runs = [BATCH / t for t in time_fit(model, list(zip(cycle1_features(ids), tgt)))]
    cycle1 = float(np.median(cycle1_runs))

    # === Cycle 2: current rows + exemplar rows distilled from the cycle-1 model ===
    ids, tgt = batches["cycle2"]
    model = cycle2_model(model, max_item_1, max_item_2, _NUM_ITEMS.value,
                         exemplar_set(ids) if _CACHE.value else None)
    features = cycle2_features(ids, indexed=_CACHE.value)
    rows = BATCH + EXEMPLAR_ROWS
    cycle2_runs = [rows / t for t in time_fit(model, list(zip(features, tgt)))]
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
            "cache_teacher_vectors": _CACHE.value,
            "steps": _STEPS.value,
            "cycle1_batch_width_mean": round(float(np.mean(widths)), 1),
        },
    }
    print(json.dumps(result))


if __name__ == "__main__":
    flags.mark_flags_as_required(["data_dir"])
    app.run(main)
