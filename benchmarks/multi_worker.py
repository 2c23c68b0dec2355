"""Training examples/s of 1 and 2 MultiWorkerMirroredStrategy workers (one core each), and the
bytes all-reduced per step.

    python benchmarks/multi_worker.py --steps=20 --repeats=3 --num_items=43136 --hidden_units=150

The workers run on this machine's loopback (``ader_tf.launch``), each pinned to one core with
``taskset`` and one TensorFlow thread pool thread, on random batches of the full-softmax SASRec
step (``--batch_size`` rows a step over all workers). Prints one JSON object as its last line.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags

# The checkout's package, installed or not (as the other benchmarks do).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_integer("workers", 2, "Most workers to time (1..workers).")
flags.DEFINE_integer("steps", 20, "Timed steps (after 3 warm-up steps).")
flags.DEFINE_integer("repeats", 3, "Rounds of 1..workers, interleaved (noise on a shared machine "
                     "hits all counts alike); the median and range of each count are reported.")
flags.DEFINE_integer("num_items", 43136, "Item table rows (DIGINETICA: 43136).")
flags.DEFINE_integer("hidden_units", 150, "Embedding size.")
flags.DEFINE_integer("maxlen", 50, "Input width.")
flags.DEFINE_integer("batch_size", 256, "Global batch (rows a step over all workers).")
flags.DEFINE_boolean("worker", False, "Internal: run as one worker (TF_CONFIG set).")
FLAGS = flags.FLAGS

_WARMUP = 3


def _worker() -> None:
    """One worker: times ``steps`` training steps; the chief prints its JSON."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    from ader_tf.continual.workers import distribution_strategy, worker_role
    from ader_tf.models.factory import build_model
    from ader_tf.plugins import make_config

    strategy = distribution_strategy("multi_worker", 300)
    config = make_config(hidden_units=FLAGS.hidden_units, maxlen=FLAGS.maxlen)
    with strategy.scope():
        model = build_model(config, FLAGS.num_items, 0.0, seed=0)
    rng = np.random.default_rng(0)
    batches = _WARMUP + FLAGS.steps
    ids = rng.integers(1, FLAGS.num_items + 1, (batches * FLAGS.batch_size, FLAGS.maxlen))
    targets = rng.integers(1, FLAGS.num_items + 1, batches * FLAGS.batch_size)
    features = {"item_ids": ids.astype(np.int32),
                "is_exemplar": np.zeros(len(targets), np.float32),
                "exemplar_index": np.full(len(targets), -1, np.int32)}
    data = tf.data.Dataset.from_tensor_slices((features, targets.astype(np.int32)))
    data = data.batch(FLAGS.batch_size)
    times: list[float] = []

    import keras

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            times.append(time.perf_counter())

    model.fit(data, epochs=1, verbose=0, callbacks=[StepClock()])
    seconds = times[-1] - times[_WARMUP - 1]
    dense_bytes = sum(int(np.prod(v.shape)) * 4 for v in model.trainable_variables)
    workers = strategy.num_replicas_in_sync
    if worker_role(strategy).is_chief:
        print(json.dumps({
            "workers": workers, "steps": FLAGS.steps, "seconds": round(seconds, 2),
            "examples_per_second": round(FLAGS.batch_size * FLAGS.steps / seconds, 1),
            "allreduce_bytes_per_step": dense_bytes,
            # A ring all-reduce sends (and receives) 2 (n - 1) / n of the buffer per worker.
            "bytes_sent_per_worker_per_step": int(2 * (workers - 1) / workers * dense_bytes),
        }), flush=True)


def _time(workers: int) -> dict:
    from ader_tf.launch import free_ports, tf_configs

    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    args = [a for a in sys.argv[1:] if not a.startswith("--worker")]
    procs = [subprocess.Popen(["taskset", "-c", str(i % os.cpu_count()), sys.executable,
                               os.path.abspath(__file__), "--worker", *args],
                              env=dict(env, TF_CONFIG=config), stdout=subprocess.PIPE, text=True)
             for i, config in enumerate(tf_configs(free_ports(workers)))]
    outputs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        raise SystemExit(f"a worker failed: {[p.returncode for p in procs]}")
    return json.loads(outputs[0].strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    del argv
    if FLAGS.worker:
        _worker()
        return
    counts = range(1, FLAGS.workers + 1)
    rounds = [[_time(n) for n in counts] for _ in range(FLAGS.repeats)]
    runs = []
    for i in range(len(counts)):
        rates = sorted(r[i]["examples_per_second"] for r in rounds)
        first = {k: v for k, v in rounds[0][i].items() if k != "seconds"}  # one round's
        runs.append(dict(first, examples_per_second=statistics.median(rates),
                         examples_per_second_range=[rates[0], rates[-1]]))
    one = runs[0]["examples_per_second"]
    print(json.dumps({"runs": runs, "speedup": [round(r["examples_per_second"] / one, 2)
                                                for r in runs],
                      "repeats": FLAGS.repeats, "cpu_count": os.cpu_count(),
                      "num_items": FLAGS.num_items, "hidden_units": FLAGS.hidden_units,
                      "batch_size": FLAGS.batch_size}))


if __name__ == "__main__":
    app.run(main)
