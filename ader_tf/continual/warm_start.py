"""Runs that share their first cycle: what decides it, and the run that trains it once.

Cycle 1 trains on cross-entropy alone for every method (their continual terms start in cycle
2), so it depends only on the data, the seed, the model and training settings, and on the
method's dropout (`Method.trains_with_dropout`); the method's own options, its weight and the
exemplar settings act only from its end on. `first_cycle_config` turns a config into the
config of a one-cycle run that trains exactly that cycle: Finetune's (no dropout) or
Dropout's, named by the fingerprint of what it trains on. A run with ``--warm_start`` set to
such a run's folder copies its best checkpoint and then does cycle 1's test, exemplars and its
own method's end of cycle (`NeuralLearner.warm_start`). Joint's cycle 1 is Dropout's too: its
first cycle trains a new model on the first period alone, as every method's does.
``--warm_start=shared`` names a run's own first cycle without naming a folder: the first run
that needs it trains it (`shared_first_cycle`), the others start from it.

A method that measures something while cycle 1 trains (SI's path integral) keeps its own
first cycle (`Method.shares_first_cycle` False).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import os
from typing import Any

from ader_tf.config import FIELD_GROUPS, SHARED_WARM_START, Config
from ader_tf.continual.methods import METHODS
from ader_tf.io_utils import file_lock
from ader_tf.plugins import config_from_stored, make_config, option_owners

log = logging.getLogger(__name__)

#: The base fields that act only from the end of cycle 1 on: which method, its weight, and
#: what it keeps (exemplars, importance sample).
AFTER_FIRST_CYCLE = (*FIELD_GROUPS["method"], *FIELD_GROUPS["exemplars"])
#: The save_dir of first-cycle runs before their fingerprint is appended.
FIRST_CYCLE_NAME = "first-cycle"


def first_cycle_config(config: Config) -> Config:
    """The config of a one-cycle run whose cycle 1 trains as ``config``'s does.

    Its method is Finetune or Dropout (the dropout of ``config``'s method), the fields of
    `AFTER_FIRST_CYCLE` and the methods' options take their defaults, and its save_dir is
    ``first-cycle-<fingerprint>``: two configs share a first cycle exactly when this gives
    the same config.

    Raises:
        ValueError: ``config``'s method keeps its own first cycle.
    """
    method = METHODS[config.method]
    if not method.shares_first_cycle:
        raise ValueError(f"--method={config.method} measures what it keeps while cycle 1 "
                         "trains, so it cannot start from another run's first cycle")
    defaults = {f: Config.__dataclass_fields__[f].default for f in AFTER_FIRST_CYCLE}
    owners = option_owners()
    values = {
        name: value for name, value in config.to_dict().items()
        if name not in ("dataset_defaults", *AFTER_FIRST_CYCLE)
        and not (name in owners and all(p.kind == "method" for p in owners[name]))
    }
    values.update(defaults, method="dropout" if method.trains_with_dropout else "finetune",
                  cycles=1, warm_start="", save_dir=FIRST_CYCLE_NAME,
                  export_saved_models=False)
    fingerprint = make_config(**values).fingerprint()
    return make_config(**{**values, "save_dir": f"{FIRST_CYCLE_NAME}-{fingerprint}"})


def shared_first_cycle(config: Config) -> str:
    """The folder (relative to ``config.results_dir``) of the finished one-cycle run
    `first_cycle_config` gives for ``config``, trained here unless a run already has it.

    Several processes may ask at once (tuners, a table's runs): a file lock beside the
    folder lets the first train it while the others wait, then they reuse it.
    """
    from ader_tf.continual.artifacts import RunState

    first = first_cycle_config(config)
    folder = os.path.join(config.results_dir, first.run_name)
    with file_lock(folder + ".lock"):
        if not RunState.finished_cycles(folder):
            log.info("training the shared first cycle in %s", folder)
            run_alone(first)
    return first.run_name


def with_shared_first_cycle(config: Config) -> Config:
    """``config``, or with ``--warm_start=shared`` the same config starting from its shared
    first cycle (`shared_first_cycle`; trained first if no run has it yet).

    A run that has finished its cycle 1 already does not read its source again: it only
    gets the folder's name (which its fingerprint holds), and nothing is trained.
    """
    if config.warm_start != SHARED_WARM_START:
        return config
    from ader_tf.continual.artifacts import RunState

    name = first_cycle_config(config).run_name
    if not RunState.finished_cycles(os.path.join(config.results_dir, config.run_name)):
        name = shared_first_cycle(config)
    return dataclasses.replace(config, warm_start=name)


def run_alone(config: Config) -> None:
    """Runs (or resumes) ``config`` in this process, then drops what Keras keeps of it (the
    process goes on to other runs)."""
    from ader_tf.continual.runner import ContinualRunner

    runner = ContinualRunner(config)
    try:
        runner.run()
    finally:
        runner.writer.close()
    del runner
    free_models()


def free_models() -> None:
    """Drops what Keras keeps of finished runs (a process that makes many runs calls it)."""
    import keras

    gc.collect()
    keras.backend.clear_session()


def source_folder(config: Config) -> str:
    """Where ``config.warm_start`` points: relative to ``--results_dir`` unless absolute."""
    return os.path.join(config.results_dir, config.warm_start)


def first_cycle_record(config: Config, folder: str, cycle: int = 1) -> dict[str, Any]:
    """The record of cycle 1 of the finished run in ``folder``, whose first cycle must be
    ``config``'s (`first_cycle_config` gives the same for both).

    Raises:
        RunStateError: naming the folder, when it holds no finished first cycle or one that
            trained otherwise.
    """
    from ader_tf.continual.artifacts import RunState, RunStateError
    from ader_tf.io_utils import read_json

    if cycle != 1:
        raise ValueError(f"only cycle 1 starts from another run, got cycle {cycle}")
    state_path = os.path.join(folder, "state.json")
    config_path = os.path.join(folder, "config.json")
    if not (os.path.isfile(state_path) and os.path.isfile(config_path)):
        raise RunStateError(f"{folder}: --warm_start names no run with a finished first cycle "
                            "(no state.json and config.json there)")
    try:
        cycles = RunState.finished_cycles(folder)
        source = config_from_stored(read_json(config_path))
    except ValueError as e:
        raise RunStateError(f"{folder}: --warm_start cannot read the run there ({e})") from e
    if not cycles:
        raise RunStateError(f"{folder}: --warm_start names a run whose first cycle is not done")
    ours, theirs = first_cycle_config(config), first_cycle_config(source)
    if ours.fingerprint() != theirs.fingerprint():
        differ = sorted(k for k, v in ours.to_dict().items()
                        if k != "save_dir" and theirs.to_dict().get(k) != v)
        raise RunStateError(f"{folder}: --warm_start names a run whose first cycle trained "
                            f"otherwise (it differs in {differ})")
    return cycles[0]
