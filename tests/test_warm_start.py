"""Runs that start from another run's first cycle (``--warm_start``) give what training it
themselves gives."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest

from ader_tf.continual.artifacts import RunStateError
from ader_tf.continual.runner import ContinualRunner
from ader_tf.continual.warm_start import first_cycle_config
from ader_tf.data.sample import write_sample_dataset
from tests.helpers import METHOD_FLAGS, TINY_SAMPLE, results, tiny_config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """The tiny sample with four periods: three cycles, so two after the shared one."""
    folder = tmp_path_factory.mktemp("data")
    write_sample_dataset(str(folder / "sample"),
                         dataclasses.replace(TINY_SAMPLE, num_periods=4))
    return str(folder)


def _state(folder: str) -> list[dict]:
    with open(os.path.join(folder, "state.json")) as f:
        return json.load(f)["cycles"]


def test_first_cycle_is_shared_by_methods_with_the_same_dropout(tmp_path):
    def first(**flags):
        return first_cycle_config(tiny_config("data", tmp_path, **flags))

    ewc, mas = first(ewc=True, lambda_=30.0), first(method="mas", ewc_sample_num=7)
    ader, derpp = first(exemplar_size=10), first(method="derpp", derpp_alpha=2.0)
    assert ewc == mas and ewc.method == "finetune" and ewc.cycles == 1
    assert ader == derpp and ader.method == "dropout"
    assert ewc != ader
    assert first(ewc=True, lr=0.01) != ewc  # a training setting is part of it
    assert ewc.save_dir.startswith("first-cycle-") and ewc.save_dir != ader.save_dir


def test_si_trains_its_own_first_cycle(tmp_path):
    with pytest.raises(ValueError, match="--warm_start: --method=si"):
        tiny_config("data", tmp_path, method="si", warm_start="somewhere")
    with pytest.raises(ValueError, match="--method=si measures"):
        first_cycle_config(tiny_config("data", tmp_path, method="si"))


@pytest.mark.parametrize("method", ["ewc", "ader"])
def test_warm_started_run_equals_one_that_trained_cycle_1(data_dir, tmp_path, method):
    flags = {**METHOD_FLAGS[method], "cycles": 3}
    trained = tiny_config(data_dir, tmp_path / "trained", **flags)
    ContinualRunner(trained).run()

    shared = first_cycle_config(trained)
    ContinualRunner(shared).run()
    source = os.path.join(str(tmp_path / "trained"), shared.run_name)
    # The source lies elsewhere: an absolute --warm_start.
    warm = tiny_config(data_dir, tmp_path / "warm", warm_start=source, **flags)
    ContinualRunner(warm).run()

    ours = os.path.join(str(tmp_path / "warm"), warm.run_name)
    theirs = os.path.join(str(tmp_path / "trained"), trained.run_name)
    # Every result of every cycle, to the last digit: epochs, test metrics, lambda, exemplars.
    assert results(ours) == results(theirs)
    valid = [[row["valid_recall20"] for row in _state(f)] for f in (ours, theirs)]
    assert valid[0] == valid[1] and all(v is not None for v in valid[0])
    assert _state(ours)[0]["train_seconds"] == 0.0
    with open(os.path.join(ours, "Training_logs.txt")) as f:
        assert "Cycle 1 taken from" in f.read()


def test_warm_start_refuses_a_run_that_trained_otherwise(data_dir, tmp_path):
    other = first_cycle_config(tiny_config(data_dir, tmp_path, finetune=True, lr=0.01))
    ContinualRunner(other).run()
    config = tiny_config(data_dir, tmp_path, ewc=True, warm_start=other.run_name)
    with pytest.raises(RunStateError, match="first cycle trained otherwise.*'lr'"):
        ContinualRunner(config).run()
    missing = tiny_config(data_dir, tmp_path, ewc=True, warm_start="nothing-here")
    with pytest.raises(RunStateError, match="names no run with a finished first cycle"):
        ContinualRunner(missing).run()


def test_shared_first_cycle_is_trained_once_for_the_runs_that_share_it(data_dir, tmp_path):
    ader = tiny_config(data_dir, tmp_path, cycles=2, warm_start="shared", save_dir="ader")
    derpp = tiny_config(data_dir, tmp_path, cycles=2, warm_start="shared", save_dir="derpp",
                        **METHOD_FLAGS["derpp"])
    first = first_cycle_config(ader)
    assert first == first_cycle_config(derpp)
    ContinualRunner(ader).run()
    source = os.path.join(str(tmp_path), first.run_name)
    trained = os.stat(os.path.join(source, "state.json")).st_mtime_ns
    ContinualRunner(derpp).run()
    # The second run started from the first one's source, which it left as it was.
    assert os.stat(os.path.join(source, "state.json")).st_mtime_ns == trained
    for config in (ader, derpp):
        folder = os.path.join(str(tmp_path), config.run_name)
        with open(os.path.join(folder, "config.json")) as f:
            assert json.load(f)["warm_start"] == first.run_name
        cycle1 = _state(folder)[0]
        assert cycle1["train_seconds"] == 0.0
        assert cycle1["valid_recall20"] == _state(source)[0]["valid_recall20"]
    # A finished run resumed with the same command reads no source: it trains nothing again.
    os.rename(source, source + "-moved")
    summary = ContinualRunner(ader).run()
    assert summary["cycles_completed"] == 2 and not os.path.exists(source)


def test_shared_first_cycle_is_refused_to_several_workers(tmp_path):
    with pytest.raises(ValueError, match="--warm_start=shared.*multi_worker"):
        tiny_config("data", tmp_path, warm_start="shared", distribution_strategy="multi_worker")
