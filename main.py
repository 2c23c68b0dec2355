"""Runs ADER (or a baseline) over the periods of a dataset: ``python main.py [--flags]``.

Flags keep the original's names and defaults; ``--dataset`` defaults to the built-in sample.
Each plug-in (method, backbone, learner) brings its own flags, listed under its name by
``--help``. This file only parses flags into a Config and calls ``ader_tf.continual.runner.run``.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from absl import app, flags

from ader_tf.quiet import quiet_tensorflow  # noqa: E402

quiet_tensorflow()

# The flags come from declarations that need no TensorFlow, so --help answers without it; a run
# imports it in `main`, after the flags are parsed (quietly: see `quiet_tensorflow`).
from ader_tf.config import FIELD_GROUPS, Config, field_choices  # noqa: E402
from ader_tf.continual.methods import METHODS  # noqa: E402
from ader_tf.plugins import MODELS, option_groups  # noqa: E402

FLAGS = flags.FLAGS


def _define(name: str, default, help_text: str, kind: type, choices, group: str) -> None:
    """One flag, listed under ``group`` by --help."""
    where = {"module_name": group}
    if choices is not None:
        flags.DEFINE_enum(name, default, list(choices), help_text, **where)
    elif kind is bool:
        flags.DEFINE_boolean(name, default, help_text, **where)
    elif kind is int:
        flags.DEFINE_integer(name, default, help_text, **where)
    elif kind is float:
        flags.DEFINE_float(name, default, help_text, **where)
    else:
        flags.DEFINE_string(name, default, help_text, **where)


def _flag_fields() -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(Config) if f.metadata.get("flag", True)]


def define_flags() -> list[str]:
    """One flag per Config field and per plug-in option; returns the groups in order."""
    group_of = {name: group for group, names in FIELD_GROUPS.items() for name in names}
    registered = {"method": tuple(METHODS), "model": MODELS}  # the choices are plug-ins
    for field in _flag_fields():
        _define(field.name, field.default, field.metadata["help"], field.metadata["kind"],
                registered.get(field.name, field_choices(field)), group_of[field.name])
    plugin_groups = option_groups()
    for group, options in plugin_groups.items():
        for option in options:
            _define(option.name, option.default, option.help, option.kind, option.choices,
                    group)
    return [*FIELD_GROUPS, *plugin_groups]


GROUPS = define_flags()


def grouped_help() -> str:
    """Every flag of this program under its group's heading, groups in a reading order."""
    by_module = FLAGS.flags_by_module_dict()
    parts = []
    for group in GROUPS:
        lines = [flags.text_wrap(f"--{flag.name}: {flag.help} (default: {flag.default_as_str})",
                                 indent="      ", firstline_indent="  ")
                 for flag in sorted(by_module.get(group, []), key=lambda f: f.name)]
        if lines:
            parts.append(f"{group}:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def config_from_flags() -> Config:
    """Builds the Config from the parsed flags (same names), plug-in options included."""
    from ader_tf.plugins import make_config, plugin_options

    values = {f.name: getattr(FLAGS, f.name) for f in _flag_fields()}
    values.update({name: getattr(FLAGS, name) for name in plugin_options()})
    return make_config(**values)


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        config = config_from_flags()
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
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
