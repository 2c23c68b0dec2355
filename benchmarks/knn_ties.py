"""V-SKNN's Recall@20 with score ties broken at random, against ties counted for the target.

    python benchmarks/knn_ties.py --data_dir=../shared/data --dataset=DIGINETICA [--cycle=1]

The cycle's memory and test set are a `--joint` run's (every period before the cycle, the next
period filtered as the protocol filters test sets). Most items score 0 for a session, so a rank
rule that counts only items scored strictly above the target (the protocol's rule for float
logits) makes a target no neighbour contains a hit whenever fewer than 20 items score above 0.
Prints one JSON line: test examples, Recall@20 with ties in the target's favour, and with ties
broken at random (seeded; what ader_tf ships).
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ader_tf.data.cycles import ContinualData  # noqa: E402
from ader_tf.data.periods import Sessions  # noqa: E402
from ader_tf.models.sknn import SessionKNN, break_ties  # noqa: E402

flags.DEFINE_string("data_dir", "data", "Folder with <dataset>/period_*.txt.")
flags.DEFINE_string("dataset", "DIGINETICA", "Dataset folder name.")
flags.DEFINE_integer("cycle", 1, "The cycle: memory = periods before it, test = its period.")
flags.DEFINE_integer("seed", 0, "Seed of the random tie-breaking.")
FLAGS = flags.FLAGS


def main(argv: list[str]) -> None:
    del argv
    data = ContinualData(os.path.join(FLAGS.data_dir, FLAGS.dataset), seed=FLAGS.seed)
    cycle = data.cycle(FLAGS.cycle)
    memory = Sessions.concatenate([data.training_sessions(p) for p in range(FLAGS.cycle)])
    knn = SessionKNN(k=100, sample_size=500, sequential=True).fit(memory)
    # Scored once: both rules read the same counts (ties at random = what target_ranks returns).
    above, ties = knn.rank_counts(cycle.test, cycle.max_item)
    random_ranks = break_ties(above, ties, seed=FLAGS.seed)

    def recall20(ranks: np.ndarray) -> float:
        return round(100 * float(np.mean(ranks < 20)), 2)

    print(json.dumps({"test_examples": len(above), "recall20_ties_for_target": recall20(above),
                      "recall20_ties_at_random": recall20(random_ranks)}))


if __name__ == "__main__":
    app.run(main)
