"""Tunes a method on validation: ``python -m ader_tf.tune --method=NAME --trials=N [--flags]``.

Every trial draws values from the method's search space (declared in its file), runs the
method over the first cycles of ``--dataset`` and scores it by the validation Recall@20 of
the ``--tune_cycles`` (mean over ``--tune_seeds``); cycle 1 is trained once per seed and
shared. Processes started with the same command (on one machine or several, with the same
``--storage``) share the study until ``--trials`` trials have finished. The best values go
to ``--tuned_out``, which ``main.py --tuned=FILE`` reads, and every trial to
``<study_name>-trials.csv`` and ``.png`` beside it. Every flag of ``main.py`` applies
to the runs; this file only parses flags and calls ``ader_tf.tuning.tune``.
"""

from __future__ import annotations

import logging
import os
import shlex
import sys

from absl import app, flags

from ader_tf.quiet import quiet_tensorflow

quiet_tensorflow()

from ader_tf import cli  # noqa: E402

FLAGS = flags.FLAGS
RUN_GROUPS = cli.define_run_flags(FLAGS)
_TUNING = {"module_name": "tuning"}
flags.DEFINE_integer("trials", 20, "Trials to finish (completed or pruned), counted over "
                     "every process sharing the study.", **_TUNING)
flags.DEFINE_string("storage", "", "Optuna storage: journal:PATH (a journal file; on a file "
                    "system every machine sees, for several machines) or an RDB URL "
                    "(sqlite:///tune.db, postgresql://...). Default: "
                    "journal:<results_dir>/tune/<study_name>.journal.", **_TUNING)
flags.DEFINE_string("study_name", "", "The study's name in the storage; processes with the "
                    "same name and storage share it. Default: <DATASET>-<method>.", **_TUNING)
flags.DEFINE_list("tune_cycles", ["2", "3"], "The cycles whose validation Recall@20 the "
                  "objective averages; runs stop after the last (cycle 1 is shared).",
                  **_TUNING)
flags.DEFINE_list("tune_seeds", [], "Seeds each trial runs (the objective is their mean). "
                  "Default: --random_seed alone.", **_TUNING)
flags.DEFINE_integer("startup_trials", 10, "Trials drawn at random before TPE models the "
                     "results (the sampler is seeded by --random_seed).", **_TUNING)
flags.DEFINE_boolean("prune", True, "Stop a trial whose running mean is below the median of "
                     "earlier trials at the same cycle.", **_TUNING)
flags.DEFINE_integer("heartbeat_interval", 60, "Seconds between a running trial's "
                     "heartbeats.", **_TUNING)
flags.DEFINE_integer("grace_period", 0, "Seconds without heartbeat after which a trial's "
                     "process counts as dead: its trial fails and is queued again. Default: 3 x "
                     "--heartbeat_interval.", **_TUNING)
flags.DEFINE_string("tuned_out", "", "The tuned file the best values go to (other methods' "
                    "entries are kept). Default: <results_dir>/tuned/<DATASET>.json.",
                    **_TUNING)
GROUPS = ["tuning", *RUN_GROUPS]

# Run flags that tuning sets itself.
_SET_BY_TUNING = ("cycles", "save_dir", "warm_start")


def _as_flags(values: dict) -> str:
    """``values`` as command-line flags (floats to 6 significant digits)."""
    return " ".join(f"--{k}={v:.6g}" if isinstance(v, float) else f"--{k}={v}"
                    for k, v in values.items())


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    given = cli.given_flags(FLAGS) & set(_SET_BY_TUNING)
    if given:
        raise app.UsageError(f"--{sorted(given)[0]} is set by tuning for each trial's runs "
                             "(--tune_cycles says how far they go)")
    from ader_tf.plugins import make_config

    try:
        base, _ = cli.values_from_flags(FLAGS)
        config = make_config(**base)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    if "export_saved_models" not in cli.given_flags(FLAGS):
        base["export_saved_models"] = False  # trials are scored, not served
    study_name = FLAGS.study_name or f"{config.dataset}-{config.method}"
    storage = FLAGS.storage or "journal:" + os.path.join(config.results_dir, "tune",
                                                          f"{study_name}.journal")
    tuned_out = FLAGS.tuned_out or os.path.join(config.results_dir, "tuned",
                                                f"{config.dataset}.json")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    from ader_tf.continual.methods import METHODS
    from ader_tf.errors import AderError, print_error

    try:
        from ader_tf.tuning import TuneSettings, tune, write_best
    except ModuleNotFoundError as e:
        if e.name != "optuna":
            raise
        raise app.UsageError("tuning needs Optuna: pip install -e '.[tune]'") from e
    from ader_tf.tuning_report import at_range_end, write_trials_csv, write_trials_plot

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        settings = TuneSettings(
            method=config.method, trials=FLAGS.trials, storage=storage, study_name=study_name,
            tune_cycles=tuple(int(c) for c in FLAGS.tune_cycles),
            seeds=tuple(int(s) for s in FLAGS.tune_seeds) or (config.random_seed,),
            sampler_seed=config.random_seed, startup_trials=FLAGS.startup_trials,
            prune=FLAGS.prune, heartbeat_interval=FLAGS.heartbeat_interval,
            grace_period=FLAGS.grace_period or 3 * FLAGS.heartbeat_interval)
    except ValueError as e:
        raise app.UsageError(str(e)) from e
    command = "python -m ader_tf.tune " + shlex.join(sys.argv[1:])
    try:
        study = tune(base, settings)
        entry = write_best(study, base, settings, tuned_out, command)
    except AderError as e:
        return print_error(e)
    for trial in study.get_trials(deepcopy=False):
        value = "-" if trial.value is None else f"{trial.value:.4f}"
        print(f"trial {trial.number:3d} {trial.state.name.lower():8s} {value:>7s}  "
              f"{_as_flags(trial.params)}")
    trials_file = os.path.join(os.path.dirname(os.path.abspath(tuned_out)),
                               f"{study_name}-trials")
    space = METHODS[config.method].search_space
    write_trials_csv(study, trials_file + ".csv")
    write_trials_plot(study, space, trials_file + ".png", f"{study_name}: every trial")
    print(f"{study_name}: every trial in {trials_file}.csv and .png")
    if entry is None:
        print(f"{study_name}: no trial completed; nothing written to {tuned_out}")
        return 1
    print(f"{study_name}: best trial {entry['best_trial']}: {_as_flags(entry['values'])}: "
          f"{entry['objective_name']} {entry['objective']:.4f} "
          f"({entry['trials']['complete']} complete, {entry['trials']['pruned']} pruned); "
          f"written to {tuned_out}")
    for value in at_range_end(space, entry["values"]):
        print(f"{study_name}: the best {value}: the range may be too narrow")
    return 0


if __name__ == "__main__":
    if any(arg in ("--help", "-h", "--helpshort", "-?") for arg in sys.argv[1:]):
        print((__doc__ or "").strip() + "\n\nflags (--helpfull adds absl's own):\n\n"
              + cli.grouped_help(FLAGS, GROUPS))
        sys.exit(0)
    app.run(main)
