"""Command line: `python -m preprocessing --dataset=yoochoose-clicks.dat --test_fraction=day`.

Flag names and defaults are the original's `data/preprocessing.py` (`--is_time_fraction` is a real
boolean, as the original's str2bool made it), plus `--raw_dir`, `--output_dir` and `--timezone`.
Bad input ends with exit status 1 and one line naming the file, line and text, no traceback.
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from preprocessing.errors import PreprocessingError
from preprocessing.pipeline import PreprocessConfig, default_output_dir, preprocess

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "train-item-views.csv",
                    "Raw file name in --raw_dir: yoochoose-clicks.dat or train-item-views.csv.")
flags.DEFINE_string("raw_dir", "data/raw", "Folder holding the raw file.")
flags.DEFINE_string("output_dir", None,
                    "Output folder; default data/YOOCHOOSE or data/DIGINETICA "
                    "(with _joint when --is_time_fraction=false).")
flags.DEFINE_enum("test_fraction", "week", ["day", "week"], "Period length.")
flags.DEFINE_integer("threshold_item", 4, "Drop items with at most this many clicks.")
flags.DEFINE_integer("threshold_sess", 1, "Drop sessions with at most this many clicks.")
flags.DEFINE_float("yoochoose_select", 1.0, "Below 1: keep the latest fraction of YOOCHOOSE.")
flags.DEFINE_boolean("is_time_fraction", True,
                     "Write period files; false: the original's joint train.txt / test.txt.")
flags.DEFINE_string("timezone", "UTC",
                    "IANA zone in which raw times are read (the original: the machine's zone).")


def main(argv: list[str]) -> None:
    """Builds the config from the flags and runs `preprocess`; errors exit 1 with one line."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        config = PreprocessConfig(
            test_fraction=FLAGS.test_fraction,
            threshold_item=FLAGS.threshold_item,
            threshold_sess=FLAGS.threshold_sess,
            yoochoose_select=FLAGS.yoochoose_select,
            is_time_fraction=FLAGS.is_time_fraction,
            timezone=FLAGS.timezone,
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    raw_path = os.path.join(FLAGS.raw_dir, FLAGS.dataset)
    try:
        output_dir = FLAGS.output_dir or default_output_dir(raw_path, config.is_time_fraction)
        print(f"Start preprocess {FLAGS.dataset}:")
        preprocess(raw_path, output_dir, config)
    except PreprocessingError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
