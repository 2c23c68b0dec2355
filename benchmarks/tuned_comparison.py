"""RESULTS.md's tuned comparison as one resumable command: tune, then the all-method table.

    python benchmarks/tuned_comparison.py --data_dir=../shared/data [--reverse]

Tunes every registered method that declares a search space with the same budget
(``--trials``, the first ``--startup_trials`` at random, then TPE; objective: validation
Recall@20 of cycles 2-3, seed ``--tune_seed``), one study after another, then runs every
registered method (ER under herding and reservoir selection) at the tuned values over the
first ``--cycles`` cycles with each of ``--seeds`` and writes the ``<dataset>-tuned`` section of
RESULTS.md (``benchmarks/reproduce.py --tuned --share_first_cycle``).

Everything resumes: run the same command again after a kill. Two processes may run it at once
(the second with ``--reverse``, so that they start on different studies; they share a study once
they meet, and the table's runs). Each process uses one TensorFlow thread: on 2 cores two such
processes train faster than one with both (benchmarks/processes_vs_threads.py). The studies'
journals, the tuned file with every study's trials (CSV and plot), and each finished run's
record are a few kB and go under ``--records_dir`` (committed), so the work continues on a
machine that has none of the run folders: only the trials and cycles in flight are lost (a
killed trial is failed after the tuner's grace period and retried with its values).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.registry import comparison_methods, tunable_methods  # noqa: E402

# (kind, name, default, help) of each flag.
_FLAGS = (
    ("string", "dataset", "DIGINETICA", "The dataset tuned and compared on."),
    ("string", "data_dir", "../shared/data", "Folder with <DATASET>/period_*.txt."),
    ("string", "results_dir", "results/tuned-comparison",
     "Where the run folders (checkpoints) go."),
    ("string", "records_dir", os.path.join(REPO, "benchmarks", "records"),
     "Where the small files that resume the work go: tuned/ (journals, tuned file, trials) "
     "and the finished runs' records."),
    ("integer", "trials", 8, "Finished trials per study: the budget of every method."),
    ("integer", "startup_trials", 4, "Trials drawn at random before TPE."),
    ("integer", "tune_seed", 0, "The seed of the tuning runs (and of the sampler)."),
    ("integer", "cycles", 4, "Cycles of the table's runs."),
    ("list", "seeds", ["0", "1", "2"], "Seeds of the table's runs."),
    ("boolean", "reverse", False, "Take the studies in reverse order (a second process)."),
    ("boolean", "dry_run", False, "Print the commands instead of running them."),
)

FLAGS = flags.FLAGS


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """This command's flags (defined only when it runs, so tests can import its functions)."""
    define = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
              "list": flags.DEFINE_list, "boolean": flags.DEFINE_boolean}
    for kind, name, default, help_text in _FLAGS:
        define[kind](name, default, help_text, flag_values=flag_values)


def tuned_file(records_dir: str, dataset: str) -> str:
    """The tuned file every study writes its best values to and the table reads."""
    return os.path.join(records_dir, "tuned", f"{dataset}.json")


def tune_commands(dataset: str, data_dir: str, results_dir: str, records_dir: str,
                  trials: int, startup_trials: int, tune_seed: int,
                  reverse: bool = False) -> list[list[str]]:
    """One ``python -m ader_tf.tune`` per method with a search space, each with the same
    budget, its own journal under ``records_dir/tuned`` and the shared tuned file."""
    methods = tunable_methods()[::-1] if reverse else tunable_methods()
    journal = os.path.join(records_dir, "tuned", f"{dataset}-{{}}.journal")
    return [[sys.executable, "-m", "ader_tf.tune", f"--method={method}",
             f"--dataset={dataset}", f"--data_dir={data_dir}", f"--trials={trials}",
             f"--startup_trials={startup_trials}", f"--random_seed={tune_seed}",
             f"--results_dir={results_dir}", f"--storage=journal:{journal.format(method)}",
             f"--tuned_out={tuned_file(records_dir, dataset)}", "--noprogress"]
            for method in methods]


def table_command(dataset: str, data_dir: str, results_dir: str, records_dir: str,
                  cycles: int, seeds: list[str]) -> list[str]:
    """``benchmarks/reproduce.py`` over every compared method at the tuned values."""
    return [sys.executable, os.path.join(REPO, "benchmarks", "reproduce.py"),
            f"--dataset={dataset}", f"--data_dir={data_dir}", f"--cycles={cycles}",
            f"--seeds={','.join(seeds)}", f"--methods={','.join(comparison_methods())}",
            f"--tuned={tuned_file(records_dir, dataset)}", "--share_first_cycle",
            f"--results_dir={results_dir}", f"--records_dir={records_dir}",
            f"--section={dataset.lower()}-tuned"]


def one_thread_env() -> dict[str, str]:
    """This environment with one TensorFlow thread per process."""
    return {**os.environ, "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def main(argv: list[str]) -> None:
    del argv
    # The steps run in the repository (where `-m ader_tf.tune` finds the package); the folders
    # are taken relative to where this command was started.
    data_dir, results_dir, records_dir = map(
        os.path.abspath, (FLAGS.data_dir, FLAGS.results_dir, FLAGS.records_dir))
    commands = [
        *tune_commands(FLAGS.dataset, data_dir, results_dir, records_dir, FLAGS.trials,
                       FLAGS.startup_trials, FLAGS.tune_seed, FLAGS.reverse),
        table_command(FLAGS.dataset, data_dir, results_dir, records_dir, FLAGS.cycles,
                      FLAGS.seeds),
    ]
    for command in commands:
        print(shlex.join(command), flush=True)
        if FLAGS.dry_run:
            continue
        # Each step in its own process: a study's or run's memory ends with it.
        status = subprocess.run(command, cwd=REPO, env=one_thread_env()).returncode
        if status:
            sys.exit(f"tuned_comparison: {shlex.join(command[1:4])} ... exited with {status}; "
                     "the same command resumes")


if __name__ == "__main__":
    define_flags()
    app.run(main)
