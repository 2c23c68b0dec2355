"""Runs ADER (or a baseline) over the periods of a dataset: ``python main.py [--flags]``.

Flags keep the original's names and defaults; ``--dataset`` defaults to the built-in sample.
Each plug-in (method, backbone, learner) brings its own flags, listed under its name by
``--help``. This file only parses flags into a Config and calls ``ader_tf.continual.runner.run``.
"""

from __future__ import annotations

import logging
import sys

from absl import app, flags

from ader_tf.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

# The flags come from declarations that need no TensorFlow, so --help answers without it; a run
# imports it in `main`, after the flags are parsed (quietly: see `quiet_tensorflow`).
from ader_tf import cli  # noqa: E402
from ader_tf.config import Config  # noqa: E402

FLAGS = flags.FLAGS
GROUPS = cli.define_run_flags(FLAGS)


def grouped_help() -> str:
    """Every flag of this program under its group's heading, groups in a reading order."""
    return cli.grouped_help(FLAGS, GROUPS)


def config_from_flags() -> Config:
    """Builds the Config from the parsed flags (same names), plug-in options included, with
    ``--tuned``'s values where their flags are not given."""
    return cli.config_from_flags(FLAGS)[0]


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config, tuned = cli.config_from_flags(FLAGS)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    if tuned:
        logging.info("%s: %s (tuned for --method=%s)", FLAGS.tuned,
                     " ".join(f"--{k}={v}" for k, v in sorted(tuned.items())), config.method)
    # Imported here, after the flags are parsed, so that --help needs no TensorFlow.
    from ader_tf.continual.runner import run
    from ader_tf.errors import AderError, print_error

    # TensorFlow's own logger (SavedModel and checkpoint chatter), after TF set it up.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)

    # Problems the user can act on get one line naming the file or the cycle, no traceback.
    try:
        summary = run(config)
    except AderError as e:
        return print_error(e)
    m = summary["mean"]
    print(f"{config.run_name}: mean over {summary['cycles_completed']} cycles: "
          f"Recall@20 {100 * m['recall20']:.2f}  MRR@20 {100 * m['mrr20']:.2f}  "
          f"Recall@10 {100 * m['recall10']:.2f}  MRR@10 {100 * m['mrr10']:.2f}")
    if "forgetting" in summary:  # --probe_fraction > 0 (see accuracy_matrix.csv)
        print(f"{config.run_name}: probe Recall@20: " + "  ".join(
            f"{name} " + ("-" if value is None else f"{100 * value:.2f}")
            for name, value in summary["forgetting"].items() if name != "cycles"))
    return 0


if __name__ == "__main__":
    if any(arg in ("--help", "-h", "--helpshort", "-?") for arg in sys.argv[1:]):
        print((__doc__ or "").strip() + "\n\nflags (--helpfull adds absl's own):\n\n"
              + grouped_help())
        sys.exit(0)
    app.run(main)
