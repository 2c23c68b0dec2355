"""Every plug-in a run can choose, with its options: the one list that flags, configs, tests
and benchmarks read.

Plug-ins are the continual methods (`--method`), the backbones (`--model`) and the learners
that train them (chosen by the backbone and its flags). Each declares its options in its own
file (`ader_tf.options.Option`); this module gathers them, makes configs that know them
(`make_config`) and refuses options given to a plug-in the run does not use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from ader_tf.config import SHARED_WARM_START, Config
from ader_tf.continual.learners import KNN_MODELS, LEARNERS, learner_name
from ader_tf.continual.methods import METHODS
from ader_tf.models.factory import BACKBONE_OPTIONS
from ader_tf.options import Option

#: Every `--model`: the neural backbones, then the session-kNN ones.
MODELS = (*BACKBONE_OPTIONS, *KNN_MODELS)


@dataclasses.dataclass(frozen=True)
class Plugin:
    """One plug-in: its kind ("method", "model" or "learner"), name and options.

    ``chosen`` says whether a config uses it; ``choice`` is the flags that choose it, for
    messages.
    """

    kind: str
    name: str
    options: tuple[Option, ...]
    chosen: Callable[[Config], bool]
    choice: str


def plugins() -> list[Plugin]:
    """Every registered plug-in, methods first."""
    found = [
        Plugin("method", name, cls.options, lambda c, n=name: c.method == n, f"--method={name}")
        for name, cls in METHODS.items()
    ]
    found += [
        Plugin("model", name, BACKBONE_OPTIONS.get(name, ()), lambda c, n=name: c.model == n,
               f"--model={name}")
        for name in MODELS
    ]
    found += [
        Plugin("learner", name, cls.options, lambda c, n=name: learner_name(c) == n,
               cls.chosen_by)
        for name, cls in LEARNERS.items()
    ]
    return found


def plugin_options() -> dict[str, Option]:
    """Every plug-in option by name (an option two plug-ins share is declared alike by both).

    Raises:
        ValueError: two plug-ins declare one name differently, or a name is a Config field.
    """
    fields = {f.name for f in dataclasses.fields(Config)}
    options: dict[str, Option] = {}
    for plugin in plugins():
        where = f"{plugin.kind} {plugin.name}"
        for option in plugin.options:
            if option.name in fields:
                raise ValueError(f"{where}: option {option.name!r} is a Config field")
            if options.setdefault(option.name, option) != option:
                raise ValueError(f"{where}: option {option.name!r} is declared differently by "
                                 "another plug-in")
    return options


def option_owners() -> dict[str, list[Plugin]]:
    """The plug-ins that declare each option, options in registry order."""
    owners: dict[str, list[Plugin]] = {}
    for plugin in plugins():
        for option in plugin.options:
            owners.setdefault(option.name, []).append(plugin)
    return owners


def option_groups() -> dict[str, list[Option]]:
    """The plug-ins' options under their heading in ``--help`` ("method lwf"), in registry
    order; an option that several plug-ins of one kind share is listed once, under all of
    their names ("model stamp/stmp")."""
    groups: dict[str, list[Option]] = {}
    options = plugin_options()
    for name, owned_by in option_owners().items():
        heading = f"{owned_by[0].kind} {'/'.join(p.name for p in owned_by)}"
        groups.setdefault(heading, []).append(options[name])
    return groups


def make_config(**values: Any) -> Config:
    """A validated Config: base fields and plug-in options by name (flags' names).

    Raises:
        ValueError: naming the flag and the value received, for a bad value, an unknown
            option, or an option of a plug-in the run does not use.
    """
    defaults = {name: option.default for name, option in plugin_options().items()}
    config = Config(option_defaults=defaults, **values)
    validate_plugins(config)
    return config


def config_from_stored(stored: dict[str, Any]) -> Config:
    """The Config a run folder's (or record's) config.json describes."""
    values = {k: v for k, v in stored.items() if k not in ("fingerprint", "dataset_defaults")}
    return make_config(**values)


def validate_plugins(config: Config) -> None:
    """Refuses plug-ins and plug-in options that do not apply to ``config``.

    Raises:
        ValueError: naming the flags and what to use instead.
    """
    if config.method not in METHODS:
        raise ValueError(f"--method must be one of {tuple(METHODS)}, got {config.method!r}")
    if config.model not in MODELS:
        raise ValueError(f"--model must be one of {MODELS}, got {config.model!r}")
    known = plugin_options()
    for name, value in config.options.items():
        if name not in known:
            raise ValueError(f"--{name} is not an option of any plug-in")
        known[name].validate(value)
    method = METHODS[config.method]
    method.check_config(config)
    learner = LEARNERS[learner_name(config)]
    learner.check_config(config, method)
    if config.warm_start and not method.shares_first_cycle:
        raise ValueError(f"--warm_start: --method={config.method} measures what it keeps while "
                         "cycle 1 trains, so it trains its first cycle itself")
    if config.warm_start and not learner.warm_starts:
        raise ValueError(f"--warm_start: --model={config.model} trains nothing to start from")
    if config.warm_start == SHARED_WARM_START and config.distribution_strategy == "multi_worker":
        raise ValueError("--warm_start=shared trains the first cycle in the process before the "
                         "run; with --distribution_strategy=multi_worker, train it in a run of "
                         "its own and give --warm_start its folder")
    owners_of = option_owners()
    for name in config.options:
        owners = owners_of[name]
        if not any(p.chosen(config) for p in owners):
            wanted = " or ".join(p.choice for p in owners)
            current = ", ".join(sorted({f"--{p.kind}={getattr(config, p.kind)}" for p in owners
                                        if p.kind != "learner"})) or f"--model={config.model}"
            raise ValueError(f"--{name} only applies to {_merged(wanted)}, not {current}")


def _merged(choices: str) -> str:
    """"--model=stamp or --model=stmp" as "--model=stamp/stmp" (one flag's values)."""
    parts = choices.split(" or ")
    flags = {p.split("=")[0] for p in parts}
    if len(parts) > 1 and len(flags) == 1 and all("=" in p and " " not in p for p in parts):
        return f"{flags.pop()}={'/'.join(p.split('=', 1)[1] for p in parts)}"
    return choices
