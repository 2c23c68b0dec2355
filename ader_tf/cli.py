"""The run flags the command lines share (``main.py``, ``python -m ader_tf.tune``).

One flag per Config field and per plug-in option, grouped as ``--help`` lists them, and
``--tuned`` (values from a tuning's file). Nothing is defined on import: a command line calls
`define_run_flags` on its own ``FlagValues``. Importing this module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from absl import flags

from ader_tf.config import FIELD_GROUPS, Config, field_choices
from ader_tf.continual.methods import METHODS
from ader_tf.plugins import MODELS, option_groups

TUNED_HELP = ("A file written by python -m ader_tf.tune: its values for the run's method (e.g. "
              "--lambda_) replace the defaults; a flag given on the command line wins. Without "
              "it, the paper's defaults.")


def _define(flag_values: flags.FlagValues, name: str, default: Any, help_text: str, kind: type,
            choices: Any, group: str) -> None:
    """One flag, listed under ``group`` by --help."""
    where = {"module_name": group, "flag_values": flag_values}
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


def flag_fields() -> list[dataclasses.Field]:
    """The Config fields that are flags."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("flag", True)]


def define_run_flags(flag_values: flags.FlagValues) -> list[str]:
    """One flag per Config field and per plug-in option, and ``--tuned``; returns the --help
    groups in order."""
    group_of = {name: group for group, names in FIELD_GROUPS.items() for name in names}
    registered = {"method": tuple(METHODS), "model": MODELS}  # the choices are plug-ins
    for field in flag_fields():
        _define(flag_values, field.name, field.default, field.metadata["help"],
                field.metadata["kind"], registered.get(field.name, field_choices(field)),
                group_of[field.name])
    flags.DEFINE_string("tuned", "", TUNED_HELP, module_name="run", flag_values=flag_values)
    plugin_groups = option_groups()
    for group, options in plugin_groups.items():
        for option in options:
            _define(flag_values, option.name, option.default, option.help, option.kind,
                    option.choices, group)
    return [*FIELD_GROUPS, *plugin_groups]


def grouped_help(flag_values: flags.FlagValues, groups: list[str]) -> str:
    """Every flag under its group's heading, groups in ``groups``' order."""
    by_module = flag_values.flags_by_module_dict()
    parts = []
    for group in groups:
        lines = [flags.text_wrap(f"--{flag.name}: {flag.help} (default: {flag.default_as_str})",
                                 indent="      ", firstline_indent="  ")
                 for flag in sorted(by_module.get(group, []), key=lambda f: f.name)]
        if lines:
            parts.append(f"{group}:\n" + "\n".join(lines))
    return "\n\n".join(parts)


def run_values(flag_values: flags.FlagValues) -> dict[str, Any]:
    """The Config's values from the parsed flags (same names), plug-in options included."""
    from ader_tf.plugins import plugin_options

    values = {f.name: flag_values[f.name].value for f in flag_fields()}
    values.update({name: flag_values[name].value for name in plugin_options()})
    return values


def given_flags(flag_values: flags.FlagValues) -> set[str]:
    """The names of the flags given on the command line."""
    return {name for name in flag_values if flag_values[name].present}


def values_from_flags(flag_values: flags.FlagValues) -> tuple[dict[str, Any], dict[str, Any]]:
    """The Config's values the parsed flags give, with ``--tuned``'s values for the run's
    method where their flag was not given; returns them and the values taken from the file.

    Raises:
        ValueError: a bad value or combination, or a tuned file that does not fit the run.
    """
    from ader_tf.plugins import make_config
    from ader_tf.tuned import tuned_values

    values = run_values(flag_values)
    config = make_config(**values)  # the method, whichever flag chose it, and the dataset
    if not flag_values["tuned"].value:
        return values, {}
    tuned = tuned_values(flag_values["tuned"].value, config.dataset, config.method)
    unknown = sorted(set(tuned) - set(values))
    if unknown:
        raise ValueError(f"{flag_values['tuned'].value}: {unknown} are not flags of a run")
    given = given_flags(flag_values)
    applied = {name: value for name, value in tuned.items() if name not in given}
    return {**values, **applied}, applied


def config_from_flags(flag_values: flags.FlagValues) -> tuple[Config, dict[str, Any]]:
    """The Config the parsed flags give (see `values_from_flags`) and the values taken from
    ``--tuned``.

    Raises:
        ValueError: a bad value or combination, or a tuned file that does not fit the run.
    """
    from ader_tf.plugins import make_config

    values, applied = values_from_flags(flag_values)
    return make_config(**values), applied
