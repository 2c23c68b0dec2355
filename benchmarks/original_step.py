"""The original ADER's training step and ours, timed in one run, interleaved, on the same batches.

Usage:
    python benchmarks/original_step.py --data_dir=../shared/data/DIGINETICA \\
        --original_dir=/tmp/ader_original --original_python=/work/orig-venv/bin/python \\
        [--repeats=5] [--steps=25]

What the original needs (its code is read from ``--original_dir``, never copied here):
  1. A checkout of github.com/doublemul/ADER, outside this repository, e.g.
         git clone https://github.com/doublemul/ADER /tmp/ader_original
     (or, from a bare mirror: git --git-dir=MIRROR archive HEAD | tar -x -C /tmp/ader_original).
     Only its ADER.py and modules.py are imported, unmodified; ADER.py imports `tqdm`.
  2. The `tf_keras` package of the installed TensorFlow's version, for the original's
     `tf.compat.v1.layers` under TensorFlow 2.16+. To leave the Python that runs ours and the
     tests unchanged, put it in a separate environment that sees the system packages:
         python -m venv --system-site-packages /work/orig-venv
         /work/orig-venv/bin/pip install tf_keras==2.21.0      # = tensorflow.__version__
     and pass ``--original_python=/work/orig-venv/bin/python`` (default: this interpreter).
  3. Nothing to set by hand: the original's worker is started with TF_USE_LEGACY_KERAS=1 and,
     as the original's main.py sets it, TF_DETERMINISTIC_OPS=1 (``--original_deterministic_ops``).
     Ours runs without TF_USE_LEGACY_KERAS. The fixes the original's full runs needed on
     TensorFlow 2.21 (``dtype=object`` for ragged numpy arrays, imports in data/util.py; see
     ../shared/parity/reference_runs/README.md) are in code this benchmark does not run.

Why a separate script rather than a flag of train_step.py: ours and the original cannot share a
process (legacy Keras graph mode against Keras 3 eager), so this one starts two long-lived worker
processes, feeds them one batches file and alternates their timed rounds; train_step.py stays a
one-process timing of ours. This script reuses train_step.py's examples, batches and models
(`period_examples`, `sample_batches`, `cycle1_model`, `cycle2_model`, `fit_dataset`); its flags
(--data_dir, --steps, --warmup, --seed, --num_items, --trim_padding, --length_groups, --threads,
--cache_teacher_vectors) mean the same here, and --repeats is the number of rounds.

Workers: ours is this script with ``--worker=ours``; the original's is original_worker.py. Each
builds its cycle-1 model once and warms it up (``--warmup`` batches, then one untimed pass over
the timed batches); on each ``run`` it times ``--steps`` steps over the same timed batches (ours:
one `fit` over them, as train_step.py; the original: one `sess.run(train_op)` per batch) and
reports seconds. Round i runs both, the original first in even rounds and ours first in odd ones
(O U U O O U ...), so drift in the machine's load falls on both; ratios are per round.

Cycle 1: 256 rows of DIGINETICA period_0 examples (left padded to maxlen 50, the last 50 items
kept, as the original's sampler pads), CE over items 1..max(period_0). Cycle 2: 256 current + 264
exemplar rows of period_0 examples; scoring over items 1..max(period_0, period_1); distillation
on the exemplar rows from the frozen cycle-1 model over items 1..max(period_0), with weight 0.5.
The original distils from the logits its exemplar selection stored (computed untimed here with its
cycle-1 model); ours from the teacher's cached session vectors (as the runner). Item tables: the
original's has 43,136 + 1 rows at every cycle (it sizes to all DIGINETICA items); ours max_item
+ 1 rows at each cycle, as the runner (``--num_items`` fixes one size).

Output: a table (rows/s per implementation: median and min-max over rounds; ratio ours/original:
median and min-max of the per-round ratios), then, as the last line, one JSON object:
    {"cycle1": {"original": {...}, "ours": {...}, "ratio": {...}}, "cycle2": {...}, ...}
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import train_step  # noqa: E402  (defines the shared flags)
from benchmarks.interleaved import (  # noqa: E402
    IMPLEMENTATIONS,
    TARGET,
    format_table,
    round_schedule,
    summarize,
)
from benchmarks.original_worker import PREFIX, load_batches, serve  # noqa: E402

_ORIGINAL_DIR = flags.DEFINE_string("original_dir", None, "Checkout of doublemul/ADER.")
_ORIGINAL_PYTHON = flags.DEFINE_string(
    "original_python", sys.executable,
    "Interpreter for the original's worker (with tf_keras installed).")
_ORIGINAL_DETERMINISTIC = flags.DEFINE_bool(
    "original_deterministic_ops", True,
    "Start the original's worker with TF_DETERMINISTIC_OPS=1, as its main.py sets it.")
_ORIGINAL_ITEMS = flags.DEFINE_integer(
    "original_items", 43136, "The original's item count (its main.py: 43,136 for DIGINETICA).")
_WORKER = flags.DEFINE_enum("worker", None, ["ours"], "Internal: run as ours' worker process.")
_BATCHES = flags.DEFINE_string("batches", None, "Internal: the worker's batches file.")

# === Ours' worker ===


class OursStep:
    """Ours' model built by train_step.py; `setup(cycle)` then `run()` as `serve` calls them."""

    def __init__(self, batches: str) -> None:
        import tensorflow as tf

        if train_step._THREADS.value:
            tf.config.threading.set_intra_op_parallelism_threads(train_step._THREADS.value)
            tf.config.threading.set_inter_op_parallelism_threads(train_step._THREADS.value)
        self.arrays, self.meta = load_batches(batches)
        self.model: Any = None
        self.timed: Any = None
        self.rows = 0
        self.steps = 0

    def setup(self, cycle: int) -> dict:
        meta, arrays = self.meta, self.arrays
        num_items = train_step._NUM_ITEMS.value
        if cycle == 1:
            ids, targets = arrays["c1_ids"], arrays["c1_targets"]
            self.model = train_step.cycle1_model(
                num_items or meta["max_item_1"], meta["max_item_1"], meta["seed"],
                train_step._TRIM.value, train_step._GROUPS.value)
            features = train_step.cycle1_features(ids)
        else:
            ids, targets = arrays["c2_ids"], arrays["c2_targets"]
            cache = train_step._CACHE.value
            self.model = train_step.cycle2_model(
                self.model, meta["max_item_1"], meta["max_item_2"], num_items,
                train_step.exemplar_set(ids) if cache else None)
            features = train_step.cycle2_features(ids, indexed=cache)
        batches = list(zip(features, targets))
        warmup = meta["warmup"]
        self.model.fit(train_step.fit_dataset(batches[:warmup]), epochs=1, verbose=0)
        self.timed = train_step.fit_dataset(batches[warmup:])
        self.rows, self.steps = int(ids.shape[1]), len(batches) - warmup
        table_rows = int(self.model.encoder.num_items) + 1
        return {"table_rows": table_rows, "rows_per_step": self.rows}

    def run(self) -> dict:
        start = time.perf_counter()
        self.model.fit(self.timed, epochs=1, verbose=0)
        return {"seconds": time.perf_counter() - start, "rows": self.rows * self.steps}


# === The parent ===


class Worker:
    """A worker process: commands on its stdin, answers (PREFIX lines) on its stdout."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: str) -> None:
        self.name, self.log = name, log
        self._log: IO = open(log, "w")  # noqa: SIM115  (closed in `close`)
        self.process = subprocess.Popen(command, env=env, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self._log, text=True)

    def answer(self) -> dict:
        """The next answer line; raises with the end of the worker's log if it ended."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                message = json.loads(line[len(PREFIX):])
                if "error" in message:
                    raise RuntimeError(f"{self.name} worker: {message['error']}")
                return message
        self._log.flush()
        with open(self.log) as f:
            tail = "".join(f.readlines()[-30:])
        raise RuntimeError(f"{self.name} worker ended (exit {self.process.wait()}):\n{tail}")

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        """Ends the worker: `quit`, or a kill if it does not end within a minute."""
        if self.process.poll() is None:
            try:
                self.send("quit")
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
        self._log.close()


def start_workers(folder: str, batches: str) -> dict[str, Worker]:
    script = os.path.dirname(os.path.abspath(__file__))
    shared = [f"--batches={batches}"]
    ours_env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    ours_flags = [flags.FLAGS[name].serialize() for name in
                  ("num_items", "trim_padding", "length_groups", "threads",
                   "cache_teacher_vectors")]
    original_env = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    if _ORIGINAL_DETERMINISTIC.value:
        original_env["TF_DETERMINISTIC_OPS"] = "1"
    else:
        original_env.pop("TF_DETERMINISTIC_OPS", None)
    return {
        "original": Worker(
            "original",
            [_ORIGINAL_PYTHON.value, os.path.join(script, "original_worker.py"),
             f"--original_dir={_ORIGINAL_DIR.value}", f"--item_num={_ORIGINAL_ITEMS.value}",
             *shared],
            original_env, os.path.join(folder, "original.log")),
        "ours": Worker(
            "ours",
            [sys.executable, os.path.abspath(__file__), "--worker=ours", *ours_flags, *shared],
            ours_env, os.path.join(folder, "ours.log")),
    }


def write_batches(path: str) -> dict[str, Any]:
    """Samples the batches (train_step.py's) and writes them, with their facts, to ``path``."""
    data_dir = train_step._DATA_DIR.value
    inputs, targets, max_item_1 = train_step.period_examples(
        os.path.join(data_dir, "period_0.txt"))
    _, _, max_item_p1 = train_step.period_examples(os.path.join(data_dir, "period_1.txt"))
    warmup, steps = train_step._WARMUP.value, train_step._STEPS.value
    batches = train_step.sample_batches(inputs, targets, warmup + steps, train_step._SEED.value)
    meta = {
        "max_item_1": max_item_1, "max_item_2": max(max_item_1, max_item_p1),
        "warmup": warmup, "steps": steps, "seed": train_step._SEED.value,
        "batch": train_step.BATCH, "exemplar_rows": train_step.EXEMPLAR_ROWS,
        "maxlen": train_step.MAXLEN, "dropout": 0.3, "kd_weight": train_step.KD_WEIGHT,
        "learning_rate": train_step.LEARNING_RATE,
    }
    np.savez(path, c1_ids=batches["cycle1"][0], c1_targets=batches["cycle1"][1],
             c2_ids=batches["cycle2"][0], c2_targets=batches["cycle2"][1],
             meta=np.asarray(json.dumps(meta)))
    return meta


def main(argv: list[str]) -> None:
    del argv
    if _WORKER.value == "ours":
        step = OursStep(_BATCHES.value)
        serve(step.setup, step.run)
        return
    if not _ORIGINAL_DIR.value or not os.path.isfile(os.path.join(_ORIGINAL_DIR.value, "ADER.py")):
        raise app.UsageError("--original_dir must be a checkout of doublemul/ADER (has ADER.py)")
    load = {"start": list(os.getloadavg())}
    rounds = train_step._REPEATS.value
    result: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="original_step_") as folder:
        batches = os.path.join(folder, "batches.npz")
        meta = write_batches(batches)
        workers = start_workers(folder, batches)
        try:
            setup = {name: w.answer() for name, w in workers.items()}
            for cycle in ("cycle1", "cycle2"):
                if cycle == "cycle2":
                    for w in workers.values():
                        w.send("cycle2")
                    setup = {name: w.answer() for name, w in workers.items()}
                # One untimed pass each over the timed batches (first-pass effects).
                for w in workers.values():
                    w.send("run")
                    w.answer()
                rates: dict[str, list[float]] = {name: [] for name in IMPLEMENTATIONS}
                for order in round_schedule(rounds):
                    for name in order:
                        workers[name].send("run")
                        answer = workers[name].answer()
                        rates[name].append(answer["rows"] / answer["seconds"])
                summary = summarize(rates["original"], rates["ours"])
                rows = setup["ours"]["rows_per_step"]
                summary["table_rows"] = {n: setup[n]["table_rows"] for n in IMPLEMENTATIONS}
                result[cycle] = summary
                print(format_table(cycle, rows, summary), flush=True)
                print(f"  item table rows: original {setup['original']['table_rows']}, "
                      f"ours {setup['ours']['table_rows']}", flush=True)
                if setup["original"].get("new_variables"):
                    print(f"  original: variables initialised at cycle 2: "
                          f"{setup['original']['new_variables']}", flush=True)
        finally:
            for w in workers.values():
                w.close()
    load["end"] = list(os.getloadavg())
    result["target_ratio"] = TARGET
    result["reference_original_rows_per_second"] = train_step.REFERENCE
    result["loadavg"] = {k: [round(x, 2) for x in v] for k, v in load.items()}
    result["settings"] = {
        **{k: meta[k] for k in ("max_item_1", "max_item_2", "steps", "warmup", "seed")},
        "rounds": rounds, "schedule": "original first in even rounds, ours first in odd",
        "original_deterministic_ops": _ORIGINAL_DETERMINISTIC.value,
        "cache_teacher_vectors": train_step._CACHE.value,
        "trim_padding": train_step._TRIM.value, "length_groups": train_step._GROUPS.value,
        "threads": train_step._THREADS.value or "default",
    }
    print(f"load average (1, 5, 15 min): start {load['start']}, end {load['end']}")
    print(json.dumps(result))


if __name__ == "__main__":
    flags.FLAGS.set_default("repeats", 5)
    flags.FLAGS.set_default("steps", 25)
    app.run(main)
