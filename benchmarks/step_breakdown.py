"""Where an ADER training step spends its time, against what the matrix products alone need.

    python benchmarks/step_breakdown.py [--items=40000 --teacher_items=38500 --exemplar_rows=124]

The defaults are the shapes of DIGINETICA's cycle 10 (40,135 items; 59,354 training examples in
232 batches of 256, each with int(28,942 / 232) = 124 exemplar rows). Inputs are random short
sessions (1-8 clicks, as the data: mean input length is about 4).

Printed (one JSON line): milliseconds per call, the fastest of --repeats passes, for
- the whole distillation step (Keras train function: forward, backward, Adam),
- the same step with plain cross-entropy on all rows, and on the 256 current rows only,
- its parts: encoder forward+backward, scoring + cross-entropy forward+backward, teacher forward
  (encoder and product; the distillation step itself scores the teacher's session vectors,
  cached once per cycle as ADER's runner does), the Adam update of every weight,
- one [rows, d] x [d, items] product, and the same followed by a softmax,
and `matmul_bound_ms`: the step's products (forward, both backward products, the teacher) at the
speed just measured for one product. The step cannot run faster than that bound without changing
the arithmetic (sampled softmax, lower precision); the ratio says how close it is.

With --run_dir (a run's folder: state.json) and --period_dir (its period files), it also adds up
the products of that run as it ran (per cycle: epochs x (training rows + exemplar rows) through
the student, exemplar rows through the teacher, validation every epoch, the test once) and gives
`run_product_tflop` and `run_bound_minutes` at the measured product speed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.continual.learners.neural import ORIGINAL_TABLE_ITEMS  # noqa: E402
from ader_tf.continual.teacher import frozen_teacher  # noqa: E402
from ader_tf.data.cycles import ContinualData  # noqa: E402
from ader_tf.data.pipeline import batch_count  # noqa: E402
from ader_tf.models.recommender import SessionRecommender, make_optimizer  # noqa: E402
from ader_tf.models.sasrec import SASRecEncoder  # noqa: E402
from ader_tf.objectives import CrossEntropy, Distillation, combine  # noqa: E402
from ader_tf.objectives.softmax import sparse_softmax_cross_entropy  # noqa: E402

_ITEMS = flags.DEFINE_integer("items", 40000, "Items scored by the student (max_item).")
_TEACHER_ITEMS = flags.DEFINE_integer("teacher_items", 38500, "Items scored by the teacher.")
_TABLE = flags.DEFINE_integer(
    "num_items", 0, "Item table size (0: --items, as the runner's tables, which grow with the "
    "items seen; the original's had DIGINETICA's 43,136 at every cycle).")
_BATCH = flags.DEFINE_integer("batch_size", 256, "Current rows per batch.")
_EXEMPLARS = flags.DEFINE_integer("exemplar_rows", 124, "Exemplar rows per batch.")
_HIDDEN = flags.DEFINE_integer("hidden_units", 150, "d.")
_CALLS = flags.DEFINE_integer("calls", 15, "Timed calls per pass.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Passes; the fastest is reported (shared machine).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed for inputs and weights.")
_RUN_DIR = flags.DEFINE_string("run_dir", None, "A run's folder, to bound the whole run too.")
_PERIOD_DIR = flags.DEFINE_string("period_dir", None, "The run's period files (with --run_dir).")


def random_inputs(rng: np.random.Generator, rows: int, max_item: int, width: int = 8) -> np.ndarray:
    """Left-padded inputs of 1..width random items."""
    ids = np.zeros((rows, width), np.int32)
    for row, length in enumerate(rng.integers(1, width + 1, rows)):
        ids[row, width - length:] = rng.integers(1, max_item + 1, length)
    return ids


def best_ms(fns: dict[str, Callable[[], Any]], calls: int, repeats: int) -> dict[str, float]:
    """Fastest mean milliseconds per call of each function over `repeats` passes.

    The passes go round the functions in turn, so that a busy spell on a shared machine slows
    every function alike rather than whichever happened to run then.
    """
    for fn in fns.values():  # warm-up: tracing and allocation
        fn()
        fn()
    passes: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            passes[name].append((time.perf_counter() - start) / calls * 1e3)
    return {name: round(min(times), 1) for name, times in passes.items()}


def run_product_flops(run_dir: str, period_dir: str, d: int) -> tuple[float, list[int]]:
    """FLOPs of the scoring products of a run's finished cycles (state.json), and the cycles.

    Per epoch: each training and exemplar row scored against max_item items forward and in
    both backward products, each exemplar row through the teacher, each validation row once;
    the test rows once per cycle. The encoder's own products are small beside these.
    """
    with open(os.path.join(run_dir, "state.json")) as f:
        state = json.load(f)
    with open(os.path.join(run_dir, "config.json")) as f:
        config = json.load(f)
    data = ContinualData(period_dir, maxlen=config["maxlen"],
                         valid_portion=config["valid_portion"], seed=config["random_seed"])
    total, cycles, prev = 0.0, [], None
    for row in state["cycles"]:
        cycle = int(row["cycle"])
        cd = data.cycle(cycle)
        batches = batch_count(len(cd.train), config["batch_size"])
        kept = int(prev["exemplars_kept"]) if prev and cycle > 1 else 0
        exemplar_rows = (kept // batches) * batches
        prev_items = int(prev["max_item"]) if prev else 0
        per_epoch = (6 * d * cd.max_item * (len(cd.train) + exemplar_rows)
                     + 2 * d * prev_items * exemplar_rows + 2 * d * cd.max_item * len(cd.valid))
        total += int(row["epochs_run"]) * per_epoch + 2 * d * cd.max_item * len(cd.test)
        cycles.append(cycle)
        prev = row
    return total, cycles


def build_model(seed: int) -> SessionRecommender:
    encoder = SASRecEncoder(_TABLE.value or _ITEMS.value, _HIDDEN.value, 50, 2, 1,
                            dropout_rate=0.3, seed=seed,
                            init_items=ORIGINAL_TABLE_ITEMS["DIGINETICA"])
    model = SessionRecommender(encoder)
    model.compile(optimizer=make_optimizer(5e-4))
    model.build_all(50)
    return model


def main(argv: list[str]) -> None:
    del argv
    rng = np.random.default_rng(_SEED.value)
    items, teacher_items, d = _ITEMS.value, _TEACHER_ITEMS.value, _HIDDEN.value
    current, exemplars = _BATCH.value, _EXEMPLARS.value
    rows = current + exemplars
    model = build_model(_SEED.value)
    model.set_max_item(items)
    teacher = frozen_teacher(model, teacher_items)
    distillation = Distillation(teacher, 0.5)
    objectives = {"distill": combine(CrossEntropy(), distillation), "plain": CrossEntropy()}
    ids = tf.constant(random_inputs(rng, rows, items))
    targets = tf.constant(rng.integers(1, items + 1, rows).astype(np.int32))
    is_exemplar = tf.constant(np.r_[np.zeros(current), np.ones(exemplars)].astype(np.float32))
    # As ADER's runner does once per cycle: the teacher's vectors of the exemplar set (here
    # the batch's exemplar rows), looked up by exemplar_index in the step.
    distillation.cache_teacher_vectors(ids[current:].numpy())
    exemplar_index = tf.constant(np.r_[np.full(current, -1), np.arange(exemplars)], tf.int32)

    def train_step(mode: str, n: int, flags_: tf.Tensor) -> Callable[[], Any]:
        model.set_objective(objectives[mode])
        model.make_train_function()
        step = model.train_function
        batch = ({"item_ids": ids[:n], "is_exemplar": flags_[:n],
                  "exemplar_index": exemplar_index[:n]}, targets[:n])
        step(iter([batch]))  # trace now, while the model is in this mode
        return lambda: step(iter([batch]))

    variables = model.trainable_variables

    @tf.function
    def encoder_pass(batch_ids: tf.Tensor) -> list:
        with tf.GradientTape() as tape:
            total = tf.reduce_sum(model.encoder(batch_ids, training=True))
        return tape.gradient(total, variables)

    @tf.function
    def scoring_pass(batch_ids: tf.Tensor, batch_targets: tf.Tensor) -> list:
        rep = tf.stop_gradient(model.encoder(batch_ids, training=False))
        with tf.GradientTape() as tape:
            tape.watch(rep)
            loss = tf.reduce_mean(sparse_softmax_cross_entropy(batch_targets - 1, model.score(rep)))
        return tape.gradient(loss, [rep, model.encoder.item_embeddings])

    @tf.function
    def teacher_pass(batch_ids: tf.Tensor) -> tf.Tensor:
        return tf.reduce_sum(teacher(batch_ids, training=False))

    @tf.function
    def adam_pass() -> None:
        model.optimizer.apply_gradients(zip([tf.zeros_like(v) for v in variables], variables))

    a = tf.random.normal([rows, d])
    b = tf.random.normal([items, d])
    matmul = tf.function(lambda: tf.reduce_sum(tf.matmul(a, b, transpose_b=True)))
    matmul_softmax = tf.function(
        lambda: tf.reduce_sum(tf.nn.softmax(tf.matmul(a, b, transpose_b=True))))

    # Each train step is its own compiled function, traced in its mode when made.
    zeros = tf.zeros_like(is_exemplar)
    fns = {"distill_step": train_step("distill", rows, is_exemplar)}
    fns["plain_step_all_rows"] = train_step("plain", rows, zeros)
    fns["plain_step_current_rows"] = train_step("plain", current, zeros)
    fns.update({
        "encoder_fwd_bwd": lambda: encoder_pass(ids),
        "scoring_ce_fwd_bwd": lambda: scoring_pass(ids, targets),
        "teacher_fwd": lambda: teacher_pass(ids[current:]),
        "adam_update": adam_pass,
        "one_product": matmul,
        "one_product_softmax": matmul_softmax,
    })
    result: dict[str, Any] = best_ms(fns, _CALLS.value, _REPEATS.value)
    gflops = 2 * rows * d * items / (result["one_product"] * 1e-3) / 1e9
    # Forward product, its two backward products (rows and item table), the teacher's product.
    step_flops = 3 * 2 * rows * d * items + 2 * exemplars * d * teacher_items
    bound = step_flops / (gflops * 1e9) * 1e3
    result.update({
        "product_gflops": round(gflops, 1),
        "matmul_bound_ms": round(bound, 1),
        "distill_step_over_bound": round(result["distill_step"] / bound, 2),
        "shapes": {"items": items, "teacher_items": teacher_items, "current_rows": current,
                   "exemplar_rows": exemplars, "d": d},
    })
    if _RUN_DIR.value:
        flops, cycles = run_product_flops(_RUN_DIR.value, _PERIOD_DIR.value, d)
        result.update({
            "run_cycles": cycles,
            "run_product_tflop": round(flops / 1e12, 1),
            "run_bound_minutes": round(flops / (gflops * 1e9) / 60, 1),
        })
    print(json.dumps(result))


if __name__ == "__main__":
    app.run(main)
