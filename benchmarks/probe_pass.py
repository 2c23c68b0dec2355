"""Times the probe pass of one cycle at several batch sizes, interleaved, on real probes.

    nice -n 5 python benchmarks/probe_pass.py --data_dir=../shared/data --dataset=DIGINETICA \
        [--cycle=1] [--batch_sizes=64,256] [--repeats=3]

The probes are the ones ``main.py --probe_fraction=0.1`` holds out (every period's, filtered
by the items of ``--cycle``) and the model a SASRec of that cycle's item table with seeded
random weights: the pass's time depends on the shapes, not the weights. Each repeat times every
batch size once, in turn, so a shared machine's load falls on all of them alike. Prints one
JSON line: each batch size's median seconds, its ratio to the first batch size's, and how many
probe examples it ranks otherwise (the matrix products of other batch shapes may sum in
another order, which moves a rank where two scores tie to the last float bits).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

from ader_tf.data.cycles import ContinualData  # noqa: E402
from ader_tf.data.examples import Examples  # noqa: E402
from ader_tf.evaluation import evaluate_ranks  # noqa: E402
from ader_tf.models.factory import build_model  # noqa: E402
from ader_tf.plugins import make_config  # noqa: E402

flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
flags.DEFINE_string("dataset", "DIGINETICA", "Dataset folder name.")
flags.DEFINE_integer("cycle", 1, "The cycle whose probes and item table are used.")
flags.DEFINE_float("probe_fraction", 0.1, "Share of each period's sessions in its probe.")
flags.DEFINE_list("batch_sizes", ["64", "256"], "Batch sizes; ratios are to the first.")
flags.DEFINE_integer("repeats", 3, "Timed passes per batch size (after one untimed).")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    config = make_config(dataset=FLAGS.dataset, data_dir=FLAGS.data_dir,
                         probe_fraction=FLAGS.probe_fraction)
    data = ContinualData(os.path.join(FLAGS.data_dir, FLAGS.dataset), maxlen=config.maxlen,
                         seed=0, probe_fraction=FLAGS.probe_fraction)
    cycle = data.cycle(FLAGS.cycle)
    probes = Examples.concatenate([e for e in data.probe_examples(FLAGS.cycle).values()
                                   if len(e)])
    model = build_model(config, cycle.max_item, config.dropout_rate, seed=0)
    sizes = [int(b) for b in FLAGS.batch_sizes]
    ranks = {b: evaluate_ranks(model.predict_logits, probes, b, None) for b in sizes}
    seconds: dict[int, list[float]] = {b: [] for b in sizes}
    for _ in range(FLAGS.repeats):
        for b in sizes:
            started = time.perf_counter()
            evaluate_ranks(model.predict_logits, probes, b, None)
            seconds[b].append(time.perf_counter() - started)
    first = float(np.median(seconds[sizes[0]]))
    print(json.dumps({
        "dataset": FLAGS.dataset, "cycle": FLAGS.cycle, "probe_examples": len(probes),
        "max_item": cycle.max_item, "load_average": os.getloadavg()[0],
        "ranked_otherwise": {b: int((ranks[b] != ranks[sizes[0]]).sum()) for b in sizes},
        "seconds": {b: [round(s, 2) for s in v] for b, v in seconds.items()},
        "median_seconds": {b: round(float(np.median(v)), 2) for b, v in seconds.items()},
        "ratio_to_first": {b: round(float(np.median(v)) / first, 3)
                           for b, v in seconds.items()},
    }))


if __name__ == "__main__":
    app.run(main)
