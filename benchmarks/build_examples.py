"""Times building every cycle's examples (train/valid/test) of a dataset.

    python benchmarks/build_examples.py --data_dir=../shared/data --dataset=YOOCHOOSE

Target: all 17 YOOCHOOSE periods (3.3 million clicks) in <= 20 s. Prints one JSON
object as its last line.
"""

from __future__ import annotations

import json
import os
import resource
import time

from absl import app, flags

from ader_tf.data.cycles import ContinualData

flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
flags.DEFINE_string("dataset", "YOOCHOOSE", "Dataset folder name.")
flags.DEFINE_boolean("joint", False, "Build Joint's data (all previous periods) per cycle.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    started = time.perf_counter()
    data = ContinualData(os.path.join(FLAGS.data_dir, FLAGS.dataset))
    clicks = sum(data.sessions(p).num_clicks for p in range(len(data.period_files)))
    read_seconds = time.perf_counter() - started
    examples = 0
    for cycle in range(1, data.num_cycles + 1):
        c = data.cycle(cycle, joint=FLAGS.joint)
        examples += len(c.train) + len(c.valid) + len(c.test)
    total = time.perf_counter() - started
    print(json.dumps({
        "dataset": FLAGS.dataset, "joint": FLAGS.joint, "periods": len(data.period_files),
        "clicks": clicks, "examples": examples, "read_seconds": round(read_seconds, 2),
        "total_seconds": round(total, 2),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }))


if __name__ == "__main__":
    app.run(main)
