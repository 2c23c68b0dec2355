"""The options of benchmarks/reproduce.py: one frozen dataclass, each field one flag.

The entry point makes a flag of every field (same name, default and help) and builds the
options from the parsed flags; the library modules take the options as an argument.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from benchmarks.registry import MODELS, RUN_METHODS

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# main.py's epoch budget, the paper's: runs with another get it in their name, and only runs
# with it are compared with the paper's per-cycle values.
PAPER_NUM_EPOCHS = 100


def _option(default: Any, help: str, kind: str | None = None) -> Any:
    """A field with its flag's help and kind (absl's DEFINE_<kind>; default: the value's)."""
    kind = kind or {str: "string", int: "integer", bool: "boolean"}[type(default)]
    return dataclasses.field(default=default, metadata={"help": help, "kind": kind})


@dataclasses.dataclass(frozen=True)
class ReproduceOptions:
    """Which runs to make or read, where they are, and which RESULTS.md section to write."""

    dataset: str = _option("DIGINETICA", "DIGINETICA, YOOCHOOSE or sample.")
    methods: tuple[str, ...] = _option(("ader",), f"Methods among {sorted(RUN_METHODS)}.", "list")
    models: tuple[str, ...] = _option(("sasrec",), "Backbones (main.py --model); several give a "
                                      "backbone x method table.", "list")
    cycles: int = _option(0, "First N cycles only (0 = all 16).")
    num_epochs: int = _option(PAPER_NUM_EPOCHS, "Maximum epochs per cycle.")
    seeds: tuple[str, ...] = _option(("0",), "Random seeds; several give mean and spread.", "list")
    data_dir: str = _option("data", "Folder with <DATASET>/period_*.txt.")
    results_dir: str = _option("results/reproduce", "Where the runs go.")
    results_md: str = _option(os.path.join(REPO, "RESULTS.md"), "File to update.")
    section: str | None = _option(None, "Name of the RESULTS.md section to (re)write.", "string")
    reference_log: tuple[str, ...] = _option((), "Original Training_logs.txt for side by side.",
                                             "multi_string")
    extra_flags: tuple[str, ...] = _option((), "More flags for main.py (e.g. "
                                           "--hidden_units=64).", "list")
    tuned: str = _option("", "A tuned file (python -m ader_tf.tune): each main.py run gets "
                         "--tuned=FILE, so methods run with their tuned values (flags in "
                         "--extra_flags win); runs are named <method>-tuned-seed<s>.")
    share_first_cycle: bool = _option(
        False, "Train each seed's first cycle once for every run that trains it the same "
        "(main.py --warm_start=shared; the runs' numbers are those of runs that train it "
        "themselves, their wall time leaves it out but for the run that trains it).")
    run: bool = _option(True, "Run missing cycles (false: only rebuild the tables).")
    records_dir: str = _option(
        os.path.join(REPO, "benchmarks", "records"),
        "Where each finished run process's small open-format outputs are copied (committed "
        "with RESULTS.md): tables are rebuilt from them, and finished runs are not run again, "
        "on a machine that lacks --results_dir.")

    def __post_init__(self) -> None:
        # Flags give lists; tuples keep the options hashable and unchanged once built.
        for name in ("methods", "models", "seeds", "reference_log", "extra_flags"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if self.tuned:  # main.py runs in the repository's folder
            object.__setattr__(self, "tuned", os.path.abspath(self.tuned))
        unknown = set(self.methods) - set(RUN_METHODS)
        if unknown:
            raise ValueError(
                f"unknown methods {sorted(unknown)}; choose from {sorted(RUN_METHODS)}")
        unknown = set(self.models) - set(MODELS)
        if unknown:
            raise ValueError(f"unknown models {sorted(unknown)}; choose from {list(MODELS)}")

    @property
    def paper_length(self) -> bool:
        """Whether the runs have the paper's epoch budget (its per-cycle values apply)."""
        return self.num_epochs == PAPER_NUM_EPOCHS
