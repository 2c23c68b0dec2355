"""Command line: `python -m preprocessing --dataset=yoochoose-clicks.dat --test_fraction=day`.

Flag names and defaults are the original's `data/preprocessing.py` (`--is_time_fraction` is a real
boolean, as the original's str2bool made it), plus `--raw_dir`, `--output_dir` and `--timezone`,
and the flags of a shop's own click log:

    python -m preprocessing --dataset=clicks.csv --raw_dir=shop --output_dir=data/SHOP \\
        --session_column=session_id --item_column=item_id --time_column=timestamp \\
        --period_days=7
    python -m preprocessing --dataset=clicks_later.csv --raw_dir=shop --output_dir=data/SHOP \\
        --append

`--append` takes its settings from the folder's preprocessing.json; settings flags may still be
given (the first command with `--append` added) when they equal the stored ones, and a different
value ends with exit status 2 and one line naming the flag and both values.

Bad input ends with exit status 2 and one line naming the file, line and text, no traceback
(as every ader_tf command line: `ader_tf.errors`).
"""

from __future__ import annotations

import os
import sys

from absl import app, flags

from ader_tf.errors import AderError, print_error
from ader_tf.quiet import quiet_tensorflow
from preprocessing.append import SETTING_NAMES, append_periods
from preprocessing.clicklog import TIME_UNITS, ClickLogOptions
from preprocessing.errors import SettingMismatchError
from preprocessing.pipeline import (
    PreprocessConfig,
    default_output_dir,
    preprocess,
    resolve_format,
)
from preprocessing.readers import FORMATS, GENERIC

FLAGS = flags.FLAGS
flags.DEFINE_string("dataset", "train-item-views.csv",
                    "Raw file name in --raw_dir: yoochoose-clicks.dat, train-item-views.csv or a "
                    "click log (CSV or TSV, maybe .gz, or Parquet).")
flags.DEFINE_string("raw_dir", "data/raw", "Folder holding the raw file.")
flags.DEFINE_string("output_dir", None,
                    "Output folder; default data/YOOCHOOSE, data/DIGINETICA or data/<log name> "
                    "(with _joint when --is_time_fraction=false).")
flags.DEFINE_enum("test_fraction", "week", ["day", "week"], "Period length.")
flags.DEFINE_integer("threshold_item", 4, "Drop items with at most this many clicks.")
flags.DEFINE_integer("threshold_sess", 1, "Drop sessions with at most this many clicks.")
flags.DEFINE_float("yoochoose_select", 1.0, "Below 1: keep the latest fraction of YOOCHOOSE.")
flags.DEFINE_boolean("is_time_fraction", True,
                     "Write period files; false: the original's joint train.txt / test.txt.")
flags.DEFINE_string("timezone", "UTC",
                    "IANA zone in which raw times are read (the original: the machine's zone); "
                    "in a click log, the zone of ISO times without a UTC offset.")
# A shop's own click log.
flags.DEFINE_enum("dataset_format", None, list(FORMATS),
                  "Raw format; default: generic when a click log flag is given or the name "
                  "ends in .tsv, .gz, .parquet; else from the name (*.dat YOOCHOOSE, *.csv "
                  "DIGINETICA).")
flags.DEFINE_string("session_column", None, "Click log: session id column (default session_id "
                    "unless --user_column is given).")
flags.DEFINE_string("user_column", None, "Click log without session ids: user (visitor) id "
                    "column; sessions are cut at gaps of --session_gap_minutes.")
flags.DEFINE_string("item_column", None, "Click log: item id column (default item_id).")
flags.DEFINE_string("time_column", None, "Click log: click time column (default timestamp).")
flags.DEFINE_enum("time_unit", "iso", list(TIME_UNITS),
                  "Click log times: ISO 8601 text, or epoch seconds (s) or milliseconds (ms).")
flags.DEFINE_float("session_gap_minutes", 30.0, "With --user_column: a new session starts when "
                   "the gap to the user's previous click exceeds this.")
flags.DEFINE_string("delimiter", None, "Click log field separator (default from the name: .csv "
                    "comma, .tsv tab; '\\t' or 'tab' for a tab).")
flags.DEFINE_string("filter_column", None, "Click log: keep only rows whose value in this column "
                    "is --filter_value (e.g. event).")
flags.DEFINE_string("filter_value", None, "See --filter_column (e.g. view).")
flags.DEFINE_integer("period_days", None, "Click log: period length in days (default: "
                     "--test_fraction).")
flags.DEFINE_boolean("append", False,
                     "Write the clicks after the last period in --output_dir as further period "
                     "files, keeping every id; settings come from its preprocessing.json "
                     "(settings flags may be given if they equal the stored ones).")

_LOG_FLAGS = ("session_column", "user_column", "item_column", "time_column", "time_unit",
              "session_gap_minutes", "delimiter", "filter_column", "filter_value")
_DELIMITER_NAMES = {"\\t": "\t", "tab": "\t"}


def click_log_options() -> ClickLogOptions | None:
    """The click log options from the flags, or None when no click log flag is given."""
    if not any(FLAGS[name].present for name in _LOG_FLAGS):
        return None
    session_column = FLAGS.session_column
    if session_column is None and FLAGS.user_column is None:
        session_column = "session_id"
    delimiter = _DELIMITER_NAMES.get(FLAGS.delimiter, FLAGS.delimiter)
    return ClickLogOptions(
        session_column=session_column,
        item_column=FLAGS.item_column or "item_id",
        time_column=FLAGS.time_column or "timestamp",
        time_unit=FLAGS.time_unit,
        user_column=FLAGS.user_column,
        session_gap_minutes=FLAGS.session_gap_minutes,
        delimiter=delimiter,
        filter_column=FLAGS.filter_column,
        filter_value=FLAGS.filter_value,
    )


def given_settings() -> dict[str, object]:
    """The settings flags given on the command line, by name (a delimiter's name resolved)."""
    given = {name: FLAGS[name].value for name in SETTING_NAMES if FLAGS[name].present}
    if "delimiter" in given:
        given["delimiter"] = _DELIMITER_NAMES.get(given["delimiter"], given["delimiter"])
    return given


def config_from_flags() -> PreprocessConfig:
    """The run's settings from the flags.

    Raises:
        app.UsageError: A bad value or combination.
    """
    try:
        return PreprocessConfig(
            test_fraction=FLAGS.test_fraction,
            threshold_item=FLAGS.threshold_item,
            threshold_sess=FLAGS.threshold_sess,
            yoochoose_select=FLAGS.yoochoose_select,
            is_time_fraction=FLAGS.is_time_fraction,
            timezone=FLAGS.timezone,
            dataset_format=FLAGS.dataset_format,
            period_days=FLAGS.period_days,
            click_log=click_log_options(),
        )
    except ValueError as error:
        raise app.UsageError(str(error)) from error


def main(argv: list[str]) -> int:
    """Builds the config from the flags and runs `preprocess` (or `append_periods`).

    Errors in the data exit 2 with one line; with --append, a settings flag that differs from
    the stored setting exits 2 with one line naming both values.
    """
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    raw_path = os.path.join(FLAGS.raw_dir, FLAGS.dataset)
    config = None if FLAGS.append else config_from_flags()
    try:
        if FLAGS.append:
            output_dir = FLAGS.output_dir or default_output_dir(raw_path, dataset_format=GENERIC)
            print(f"Append {FLAGS.dataset} to {output_dir}:")
            append_periods(raw_path, output_dir, settings=given_settings())
            return 0
        dataset_format = resolve_format(raw_path, config)
        output_dir = FLAGS.output_dir or default_output_dir(
            raw_path, config.is_time_fraction, dataset_format=dataset_format
        )
        print(f"Start preprocess {FLAGS.dataset}:")
        preprocess(raw_path, output_dir, config)
    except SettingMismatchError as error:
        print(f"error: --{error.name}={error.given} differs from the stored {error.stored} in "
              f"{error.path}; leave it out (--append uses the stored settings) or preprocess "
              "into a new --output_dir", file=sys.stderr)
        return 2
    except AderError as error:
        return print_error(error)
    return 0


if __name__ == "__main__":
    quiet_tensorflow()  # nothing here imports TensorFlow today; this keeps it so if one does
    app.run(main)
