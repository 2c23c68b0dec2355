"""Runs ADER (or a baseline) over the periods of a dataset: ``python main.py [--flags]``.

Flags keep the original's names and defaults; ``--dataset`` defaults to the built-in sample.
This file only parses flags into a Config and calls ``ader_tf.continual.runner.run``.
"""

from __future__ import annotations

import dataclasses
import logging
import os

from absl import app, flags

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from ader_tf.config import Config, field_choices  # noqa: E402

FLAGS = flags.FLAGS


def define_flags() -> None:
    """One flag per Config field: same name, default, type and help (declared in the Config)."""
    for field in dataclasses.fields(Config):
        if field.metadata.get("flag", True) is False:
            continue
        help_text, kind = field.metadata["help"], field.metadata["kind"]
        choices = field_choices(field)
        if choices is not None:
            flags.DEFINE_enum(field.name, field.default, list(choices), help_text)
        elif kind is bool:
            flags.DEFINE_boolean(field.name, field.default, help_text)
        elif kind is int:
            flags.DEFINE_integer(field.name, field.default, help_text)
        elif kind is float:
            flags.DEFINE_float(field.name, field.default, help_text)
        else:
            flags.DEFINE_string(field.name, field.default, help_text)


define_flags()


def config_from_flags() -> Config:
    """Builds the Config from the parsed flags (same names)."""
    return Config(**{f.name: getattr(FLAGS, f.name) for f in dataclasses.fields(Config)
                     if f.metadata.get("flag", True)})


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags()
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
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
    return 0


if __name__ == "__main__":
    app.run(main)
