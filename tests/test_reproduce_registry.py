"""benchmarks/reproduce.py: methods and commands from ader_tf, the paper's numbers from data."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex

import pytest

from ader_tf.config import DATASETS, PAPER_METHODS, Config
from ader_tf.continual.methods import METHODS
from ader_tf.plugins import make_config
from benchmarks import registry
from benchmarks.paper_results import PAPER_RESULTS, load_paper_results
from benchmarks.reproduce_options import ReproduceOptions
from benchmarks.reproduce_runs import command

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The datasets the paper reports on: ours but the built-in sample.
PAPER_DATASETS = [d for d in DATASETS if d != "sample"]
# Table 2's methods: the paper's, ER aside (it reports ER only as ablations, by selection).
TABLE2_METHODS = [m for m in PAPER_METHODS if m in registry.RUN_METHODS]


def test_the_paper_file_states_its_provenance_and_covers_every_table_lookup():
    with open(PAPER_RESULTS, encoding="utf-8") as f:
        assert {"table2", "ablation_recall20", "per_cycle"} <= set(json.load(f)["provenance"])
    paper = load_paper_results()
    for dataset in PAPER_DATASETS:
        for method in TABLE2_METHODS:
            recall, mrr = paper.means(dataset, method)
            assert recall is not None and mrr is not None, (dataset, method)
            per_cycle = paper.per_cycle[dataset][method]
            assert [len(per_cycle[0]), len(per_cycle[1])] == [16, 16], (dataset, method)
    # The paper's ablations are our variants but reservoir selection (ours).
    ablations = set(registry.VARIANTS) - {"er_reservoir"}
    assert set(paper.ablation_recall20["DIGINETICA"]) == ablations
    for method in ablations:
        assert paper.means("DIGINETICA", method)[0] is not None, method


def test_the_per_cycle_values_average_to_table_2():
    """The provenance says so: a value misread from the figure or mistyped breaks it."""
    paper = load_paper_results()
    for dataset, methods in paper.per_cycle.items():
        for method, (recall, mrr) in methods.items():
            table_recall, table_mrr = paper.table2[dataset][method]
            assert sum(recall) / len(recall) == pytest.approx(table_recall, abs=0.005 + 1e-9)
            assert sum(mrr) / len(mrr) == pytest.approx(table_mrr, abs=0.005 + 1e-9)


def test_the_ablations_are_the_papers_on_diginetica_only():
    paper = load_paper_results()
    assert paper.means("DIGINETICA", "er_random") == (paper.ablation_recall20["DIGINETICA"][
        "er_random"], None)
    assert paper.means("YOOCHOOSE", "er_random") == (None, None)


def _config_of(flags: list[str]) -> Config:
    """The Config main.py builds from ``flags`` (booleans and ``--name=value`` only)."""
    values = {}
    for flag in flags:
        name, _, value = flag[2:].partition("=")
        values[name] = value or True
    return make_config(dataset="sample", **values)


@pytest.mark.parametrize("run_method", sorted(registry.RUN_METHODS))
def test_each_run_methods_flags_make_main_py_run_its_registered_method(run_method):
    method, extra = registry.RUN_METHODS[run_method]
    config = _config_of(registry.method_flags(run_method))
    assert config.method == method
    assert config.selection == next((f.split("=")[1] for f in extra if "selection" in f),
                                    "herding")


def test_every_registered_method_runs_under_a_run_method():
    assert {m for m, _ in registry.RUN_METHODS.values()} == set(METHODS)


def test_the_teacher_is_reported_for_the_methods_that_distil_from_it():
    teachers = {m for m in registry.RUN_METHODS if registry.uses_teacher(m)}
    assert teachers == {"ader", "ader_equal", "ader_fix", "lwf", "sacaisr"}


def _recorded_commands() -> list[str]:
    paths = sorted(glob.glob(os.path.join(REPO, "benchmarks", "records", "*", "timing.json")))
    with_command = []
    for path in paths:
        with open(path) as f:
            with_command += [t["command"] for t in json.load(f) if "command" in t]
    return with_command


@pytest.mark.parametrize("recorded", _recorded_commands())
def test_the_command_of_each_recorded_run_is_built_again(recorded):
    """The published runs' main.py command lines (in their records) stay what they were."""
    args = dict(a[2:].split("=", 1) for a in shlex.split(recorded)[2:] if "=" in a)
    method, seed = re.fullmatch(r"(.+)-seed(\d+)", args["save_dir"]).groups()
    options = ReproduceOptions(dataset=args["dataset"], data_dir=args["data_dir"],
                               results_dir=args["results_dir"], cycles=int(args["cycles"]),
                               num_epochs=int(args["num_epochs"]))
    assert command(options, method, seed)[2:] == shlex.split(recorded)[2:]


@pytest.mark.parametrize("run_method", sorted(registry.RUN_METHODS))
def test_a_shared_first_cycle_is_asked_of_every_run_that_can_start_from_one(run_method):
    options = ReproduceOptions(dataset="sample", share_first_cycle=True)
    for model in registry.MODELS:
        if not registry.applies(model, run_method):
            continue
        flags = command(options, run_method, "0", model)[3:]
        shared = "--warm_start=shared" in flags
        assert shared == registry.shares_first_cycle(model, run_method)
        # main.py takes every command that asks (it refuses SI's and the kNN backbones').
        chosen = [f for f in flags if f.startswith(("--model=", "--warm_start="))]
        config = _config_of(registry.method_flags(run_method) + chosen)
        assert config.warm_start == ("shared" if shared else "")
    assert registry.shares_first_cycle("sasrec", run_method) == (run_method != "si")
    assert not registry.shares_first_cycle("vsknn", run_method)
    assert "--warm_start=shared" not in command(ReproduceOptions(dataset="sample"), run_method, "0")
