"""Runs methods over a dataset and writes the paper-style tables and plots into RESULTS.md.

    python benchmarks/reproduce.py --dataset=DIGINETICA --methods=ader,joint,dropout,ewc,finetune \
        --cycles=4 --data_dir=../shared/data --section=diginetica-4cycles

Each method runs as ``python main.py`` in its own process (so every run is resumable: run the
same command again after a crash and finished cycles are kept), timed with wall clock and peak
RSS. Then a section of RESULTS.md (between ``<!-- BEGIN name -->`` and ``<!-- END name -->``)
is rewritten with the table, the paper's numbers beside ours, the command, machine and date.
With ``--seeds=0,1,2`` and ``--reference_log=...`` it writes the per-cycle side-by-side table
with the original's logs instead; several seeds without a reference log give every seed its own
row and column and then their mean, over the cycles all of them finished.

Each finished process also copies the run's small files (config, per-cycle metrics, summary,
timings, log) into ``--records_dir`` (``benchmarks/records``, committed with RESULTS.md). On a
machine without the run folders the tables are rebuilt from those records and finished runs
are not run again; delete a run's record to run it afresh. Several processes may run the same
command at once (one per core, or per machine sharing --results_dir): each passes over the runs
another is running, and the last to finish writes the whole section.

This file only turns flags into `ReproduceOptions` and calls the library: the runs are
``reproduce_runs``, the tables ``reproduce_tables``, the paper's numbers ``paper_results.json``.
"""

from __future__ import annotations

import dataclasses
import os
import sys

from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from benchmarks.reproduce_options import ReproduceOptions  # noqa: E402
from benchmarks.reproduce_runs import finished, run_all, run_dir  # noqa: E402
from benchmarks.reproduce_tables import published_command, update_results  # noqa: E402

FLAGS = flags.FLAGS
_DEFINE = {"string": flags.DEFINE_string, "integer": flags.DEFINE_integer,
           "boolean": flags.DEFINE_boolean, "list": flags.DEFINE_list,
           "multi_string": flags.DEFINE_multi_string}


def define_flags(flag_values: flags.FlagValues = FLAGS) -> None:
    """One flag per ReproduceOptions field: same name, default and help."""
    for field in dataclasses.fields(ReproduceOptions):
        default = list(field.default) if isinstance(field.default, tuple) else field.default
        _DEFINE[field.metadata["kind"]](field.name, default, field.metadata["help"],
                                        flag_values=flag_values)


define_flags()


def options_from_flags(flag_values: flags.FlagValues = FLAGS) -> ReproduceOptions:
    """The options the parsed flags give (same names).

    Raises:
        app.UsageError: naming the unknown methods or backbones.
    """
    try:
        return ReproduceOptions(**{f.name: flag_values[f.name].value
                                   for f in dataclasses.fields(ReproduceOptions)})
    except ValueError as e:
        raise app.UsageError(str(e)) from e


def main(argv: list[str]) -> None:
    del argv
    options = options_from_flags()
    try:
        elsewhere = run_all(options) if options.run else []
    except ValueError as e:  # a tuned file that does not cover the methods
        raise app.UsageError(str(e)) from e
    print(update_results(options, published_command(sys.argv[1:])))
    unfinished = [run_dir(options, *run) for run in elsewhere if not finished(options, *run)]
    if unfinished:
        print(f"{len(unfinished)} run(s) are running in other processes and not in the section "
              "yet; the last process to finish rewrites it: " + ", ".join(unfinished))


if __name__ == "__main__":
    app.run(main)
