"""Times SKNN and V-SKNN ranking on real data: memory = periods 0..T-1, test = period T.

    nice -n 19 python benchmarks/sknn.py --data_dir=../shared/data --dataset=DIGINETICA

Test examples are all prefixes of period T (no unseen-item filtering: a target the memory never
saw scores 0 and ranks below every positively scored item). Target: target_ranks well under a
minute on DIGINETICA. Prints one JSON line per model.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.data.examples import examples_from_sessions  # noqa: E402
from ader_tf.data.periods import Sessions, list_period_files, read_period_sessions  # noqa: E402
from ader_tf.evaluation import metrics_from_ranks  # noqa: E402
from ader_tf.models.sknn import SessionKNN  # noqa: E402

flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
flags.DEFINE_string("dataset", "DIGINETICA", "Dataset folder name.")
flags.DEFINE_integer("test_period", 15, "Period tested on; the memory is the periods before it.")
flags.DEFINE_integer("k", 100, "Neighbours.")
flags.DEFINE_integer("sample_size", 500, "Most recent candidate sessions kept.")
flags.DEFINE_integer("batch_size", 512, "Examples per batch.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    files = list_period_files(os.path.join(FLAGS.data_dir, FLAGS.dataset))
    memory = Sessions.concatenate(
        [read_period_sessions(f) for f in files[: FLAGS.test_period]]
    )
    test = examples_from_sessions(read_period_sessions(files[FLAGS.test_period]), maxlen=50)
    max_item = int(max(memory.items.max(), test.targets.max(), test.inputs.max()))
    for sequential in (False, True):
        knn = SessionKNN(k=FLAGS.k, sample_size=FLAGS.sample_size, sequential=sequential)
        started = time.perf_counter()
        knn.fit(memory)
        fit_seconds = time.perf_counter() - started
        started = time.perf_counter()
        ranks = knn.target_ranks(test, max_item, batch_size=FLAGS.batch_size)
        seconds = time.perf_counter() - started
        m = metrics_from_ranks(ranks)
        print(json.dumps({
            "model": "V-SKNN" if sequential else "SKNN", "dataset": FLAGS.dataset,
            "memory_sessions": len(memory), "memory_clicks": memory.num_clicks,
            "test_examples": len(test), "max_item": max_item,
            "fit_seconds": round(fit_seconds, 2), "rank_seconds": round(seconds, 2),
            "examples_per_second": round(len(test) / seconds), "recall20": round(m.recall20, 4),
            "mrr20": round(m.mrr20, 4), "recall10": round(m.recall10, 4),
            "mrr10": round(m.mrr10, 4), "mean_rank": float(np.mean(ranks)),
        }), flush=True)


if __name__ == "__main__":
    app.run(main)
