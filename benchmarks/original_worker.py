"""Worker process of benchmarks/original_step.py: the original ADER's training step.

Imports the model module (ADER.py, which imports modules.py) of a checkout of the original
(github.com/doublemul/ADER) from ``--original_dir``; no line of the original is in this repository.
The original's code runs unmodified: the fixes its reference runs needed on TensorFlow 2.21
concern its data loading and exemplar storage, not the model (see original_step.py's docstring).
Started by original_step.py with TF_USE_LEGACY_KERAS=1 (the original's `tf.layers` need the
`tf_keras` package) and, as the original's main.py sets it, TF_DETERMINISTIC_OPS=1.

It builds the original's graph once, as its main.py does for DIGINETICA: an item table of
43,136 + 1 rows at every cycle, hidden units 150, maxlen 50, 2 blocks, 1 head, dropout 0.3,
Adam at 5e-4. The steps are fed as its training loop feeds them:
  cycle 1: ``model.train_op`` after ``set_vanilla_loss()``: input_seq [256, 50] (left padded),
      pos [256], max_item = max(period_0);
  cycle 2: ``model.train_op`` after ``update_loss(lambda_)`` (its distillation graph): input_seq
      [256 + 264, 50] (current rows, then exemplar rows), pos [256] (current rows only),
      exemplar_logits [264, max(period_0)] (the logits its exemplar selection stores, computed
      here with the cycle-1 model at is_training=False, untimed), max_item =
      max(period_0, period_1).
The feeds are numpy arrays built before the timed steps (float32 logits, as in the reference
runs; the published code stores them as Python lists, which its loop would convert per step).

Protocol (stdin / stdout, one line each): after loading, it sets up cycle 1 and answers
``READY {...}``; then ``run`` times the timed batches (one `sess.run` each) and answers
``RESULT {"seconds": s, "rows": r}``; ``cycle2`` sets up cycle 2 (untimed warm-up included) and
answers ``READY``; ``quit`` ends it. Every answer line starts with ``PREFIX``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

PREFIX = "@@step "


def send(message: dict) -> None:
    """One answer line to the parent (stdout may also carry a library's prints)."""
    sys.stdout.write(PREFIX + json.dumps(message) + "\n")
    sys.stdout.flush()


def serve(setup: Callable[[int], dict], run: Callable[[], dict]) -> None:
    """Answers the parent's commands on stdin until ``quit`` or end of input.

    Args:
        setup: Builds the cycle's step (1 or 2) and warms it up; returns facts to report.
        run: Runs the timed steps once; returns {"seconds": ..., "rows": ...}.
    """
    send({"ready": 1, **setup(1)})
    for line in sys.stdin:
        command = line.strip()
        if command == "run":
            send(run())
        elif command == "cycle2":
            send({"ready": 2, **setup(2)})
        elif command == "quit":
            return
        else:
            send({"error": f"unknown command {command!r}"})


def load_batches(path: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The parent's batches file: arrays c1_ids, c1_targets, c2_ids, c2_targets and meta."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    return arrays, meta


class OriginalStep:
    """The original's graph and session; `setup(cycle)` then `run()` as `serve` calls them."""

    def __init__(self, original_dir: str, batches: str, item_num: int) -> None:
        import tensorflow.compat.v1 as tf

        tf.disable_v2_behavior()
        tf.logging.set_verbosity(tf.logging.ERROR)
        sys.path.insert(0, os.path.abspath(original_dir))
        from ADER import Ader  # the original's model module

        self.tf = tf
        self.arrays, self.meta = load_batches(batches)
        meta = self.meta
        tf.set_random_seed(meta["seed"])
        # The original main.py's defaults, the ones its model reads.
        args = argparse.Namespace(
            maxlen=meta["maxlen"], hidden_units=150, num_blocks=2, num_heads=1, l2_emb=0.0,
            random_seed=meta["seed"], dropout_rate=meta["dropout"], disable_distillation=False,
        )
        self.model = Ader(item_num, args)
        self.item_num = item_num
        config = tf.ConfigProto()  # as its main.py (no thread settings)
        config.allow_soft_placement = True
        self.session: Any = None
        self.config = config
        self.timed: list[dict] = []
        self.rows = 0

    def _feed(self, ids: np.ndarray, pos: np.ndarray, max_item: int) -> dict:
        m = self.model
        return {m.input_seq: ids, m.pos: pos, m.is_training: True, m.max_item: max_item,
                m.dropout_rate: self.meta["dropout"], m.lr: self.meta["learning_rate"]}

    def setup(self, cycle: int) -> dict:
        tf, m, meta, arrays = self.tf, self.model, self.meta, self.arrays
        batch, warmup = meta["batch"], meta["warmup"]
        new_variables: list[str] = []
        if cycle == 1:
            m.set_vanilla_loss()
            self.session = tf.Session(config=self.config)
            self.session.run(tf.global_variables_initializer())
            feeds = [self._feed(ids, tgt, meta["max_item_1"])
                     for ids, tgt in zip(arrays["c1_ids"], arrays["c1_targets"])]
        else:
            # The teacher's logits of the exemplar rows over items 1..max_item_1, as its exemplar
            # selection computes and stores them with the trained cycle-1 model.
            logits = [
                self.session.run(m.logits, {m.input_seq: ids[batch:], m.is_training: False,
                                            m.max_item: meta["max_item_1"],
                                            m.dropout_rate: meta["dropout"]})
                for ids in arrays["c2_ids"]
            ]
            m.update_loss(lambda_=meta["kd_weight"])
            # Its main.py restores the cycle-1 checkpoint into a new session; the same state
            # here. Adam's slots are reused by the second `minimize`; anything new is initialised.
            names = {v.decode() for v in self.session.run(tf.report_uninitialized_variables())}
            fresh = [v for v in tf.global_variables() if v.op.name in names]
            if fresh:
                self.session.run(tf.variables_initializer(fresh))
            new_variables = sorted(names)
            feeds = []
            for ids, tgt, teacher in zip(arrays["c2_ids"], arrays["c2_targets"], logits):
                feed = self._feed(ids, tgt[:batch], meta["max_item_2"])
                feed[m.exemplar_logits] = np.asarray(teacher, np.float32)
                feeds.append(feed)
        for feed in feeds[:warmup]:
            self.session.run(m.train_op, feed)
        self.timed = feeds[warmup:]
        self.rows = int(feeds[0][m.input_seq].shape[0])
        return {"table_rows": self.item_num + 1, "new_variables": new_variables,
                "rows_per_step": self.rows}

    def run(self) -> dict:
        start = time.perf_counter()
        for feed in self.timed:
            self.session.run(self.model.train_op, feed)
        return {"seconds": time.perf_counter() - start, "rows": self.rows * len(self.timed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original_dir", required=True, help="Checkout of doublemul/ADER.")
    parser.add_argument("--batches", required=True, help="The parent's batches file (.npz).")
    parser.add_argument("--item_num", type=int, default=43136,
                        help="Item table size (the original's main.py: 43,136 for DIGINETICA).")
    args = parser.parse_args()
    step = OriginalStep(args.original_dir, args.batches, args.item_num)
    serve(step.setup, step.run)


if __name__ == "__main__":
    main()
