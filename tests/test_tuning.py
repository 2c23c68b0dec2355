"""Tuning on the tiny sample: the objective reads validation only, processes share a journal
study without running a trial twice, a killed process's trial is failed and run again, and
neither a trial whose run folder another process holds nor a trial failed as stale while its
process lived on stops the tuner."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pandas as pd
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

from ader_tf.continual.learners.neural import NeuralLearner
from ader_tf.evaluation import Metrics
from ader_tf.io_utils import held_or_refused, read_json
from ader_tf.plugins import make_config
from ader_tf.tuned import tuned_values
from ader_tf.tuning import (
    RUNS_OF,
    Objective,
    TrialSeededSampler,
    TuneSettings,
    tune,
    write_best,
)
from tests.conftest import REPO_ROOT
from tests.helpers import TINY

# The tiny run's flags for the command line (one epoch per cycle).
TINY_FLAGS = [f"--{k}={v}" for k, v in {**TINY, "num_epochs": 1}.items()
              if k not in ("progress", "export_saved_models")] + ["--noprogress"]


def _tune(tiny_data_dir: str, tmp_path, study: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ader_tf.tune", "--method=ewc", "--dataset=sample",
            f"--data_dir={tiny_data_dir}", f"--results_dir={tmp_path / 'runs'}",
            f"--storage=journal:{tmp_path / 'study.journal'}", f"--study_name={study}",
            f"--tuned_out={tmp_path / 'tuned.json'}", "--tune_cycles=2", *TINY_FLAGS, *extra]


def _study(tmp_path, name: str) -> optuna.Study:
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "study.journal")))
    return optuna.load_study(study_name=name, storage=storage)


def test_objective_reads_validation_never_test(tiny_data_dir, tmp_path, monkeypatch):
    """Test metrics are poisoned (Recall@20 = 5); the objective must be the mean of the
    tuning cycles' best validation Recall@20, as the runs validated it."""
    validated: dict[tuple[str, int], list[float]] = {}
    validate = NeuralLearner.validate

    def recording_validate(self, cycle, epoch, data):
        metrics = validate(self, cycle, epoch, data)
        validated.setdefault((self.run.paths.root, cycle), []).append(metrics.recall20)
        return metrics

    def poisoned_test(self, cycle, data):
        return Metrics(5.0, 5.0, 5.0, 5.0, len(data.test), 5.0, 5.0)

    monkeypatch.setattr(NeuralLearner, "validate", recording_validate)
    monkeypatch.setattr(NeuralLearner, "test", poisoned_test)
    base = {**TINY, "dataset": "sample", "data_dir": tiny_data_dir,
            "results_dir": str(tmp_path / "runs")}
    settings = TuneSettings(method="ewc", trials=1, storage="journal:unused", study_name="t",
                            tune_cycles=(2,), prune=False)
    study = optuna.create_study(direction="maximize", sampler=TrialSeededSampler(0, 10))
    study.optimize(Objective(base, settings), n_trials=1)

    trial = study.trials[0]
    assert trial.state == TrialState.COMPLETE
    (folder,) = trial.user_attrs["runs"]
    assert trial.value == max(validated[(folder, 2)]) == trial.user_attrs["valid_recall20"][0]
    rows = read_json(os.path.join(folder, "state.json"))["cycles"]
    assert [row["recall20"] for row in rows] == [5.0, 5.0]  # the runs did test, poisoned
    # Cycle 1 came from the shared run: this trial did not validate it.
    assert (folder, 1) not in validated and rows[0]["train_seconds"] == 0.0


def test_a_trial_whose_run_another_process_is_running_fails_and_tuning_goes_on(
        tiny_data_dir, tmp_path):
    """Trial 0's run folder is held (as by a process that lives on after its trial was
    failed as stale): trial 0 fails at once, without touching the folder, and the next
    trial makes up the budget."""
    base = {**TINY, "num_epochs": 1, "dataset": "sample", "data_dir": tiny_data_dir,
            "results_dir": str(tmp_path / "runs")}
    settings = TuneSettings(method="ewc", trials=1, storage=f"journal:{tmp_path / 'j'}",
                            study_name="held", tune_cycles=(2,), prune=False)
    held = tmp_path / "runs" / "sample-tune-held-t0-seed0"
    with held_or_refused(str(held / "run.lock")):
        study = tune(base, settings)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert os.listdir(held) == ["run.lock"]
    assert study.trials[1].user_attrs["runs"] == [str(tmp_path / "runs" /
                                                      "sample-tune-held-t1-seed0")]


def test_a_process_whose_trial_was_failed_as_stale_goes_on(tmp_path, monkeypatch, caplog):
    """Paused past the grace period, a process finds on waking that another one failed its
    trial: Optuna refuses its result (a ValueError); the tuner logs it and makes up the
    budget with a new trial instead of stopping."""
    calls = []

    def run_seed(self, trial, config, before):
        calls.append(trial.number)
        if len(calls) == 1:  # what another process's fail_stale_trials does meanwhile
            trial.study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        return [0.5]

    monkeypatch.setattr(Objective, "_run_seed", run_seed)
    monkeypatch.setattr(Objective, "config", lambda self, params, seed, number: make_config(
        dataset="sample", results_dir=str(tmp_path), save_dir=f"t{number}"))
    base = {**TINY, "dataset": "sample", "results_dir": str(tmp_path / "runs")}
    settings = TuneSettings(method="ewc", trials=1, storage=f"journal:{tmp_path / 'j'}",
                            study_name="stale", tune_cycles=(2,), prune=False)
    study = tune(base, settings)
    assert [t.state for t in study.trials] == [TrialState.FAIL, TrialState.COMPLETE]
    assert calls == [0, 1] and "trial 0 was failed as stale by another process" in caplog.text


def test_the_tuned_entry_of_a_finished_study_is_kept_when_the_command_runs_again(tmp_path):
    """Its date, command and git revision stay those of the run that tuned it; a study that
    has changed (another best trial) is written again."""
    from optuna.distributions import FloatDistribution
    from optuna.trial import create_trial

    base = {**TINY, "dataset": "sample", "results_dir": str(tmp_path / "runs")}
    settings = TuneSettings(method="ewc", trials=2, storage="journal:j", study_name="again",
                            tune_cycles=(2,))
    study = optuna.create_study(direction="maximize")
    dist = {"lambda_": FloatDistribution(0.1, 1e4, log=True)}
    study.add_trial(create_trial(value=0.4, params={"lambda_": 1.0}, distributions=dist))
    path = str(tmp_path / "tuned.json")
    first = write_best(study, base, settings, path, "python -m ader_tf.tune (first)")
    again = write_best(study, base, settings, path, "python -m ader_tf.tune (again)")
    assert again == first == read_json(path)["methods"]["ewc"]
    assert again["command"].endswith("(first)")
    study.add_trial(create_trial(value=0.5, params={"lambda_": 2.0}, distributions=dist))
    changed = write_best(study, base, settings, path, "python -m ader_tf.tune (more)")
    assert changed["command"].endswith("(more)") and changed["values"] == {"lambda_": 2.0}
    assert read_json(path)["methods"]["ewc"] == changed


@pytest.mark.slow
def test_two_processes_share_one_journal_study(tiny_data_dir, tmp_path):
    command = _tune(tiny_data_dir, tmp_path, "two", "--trials=4")
    started = time.time()
    procs = [subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=1500)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    print(f"two processes, 4 trials: {time.time() - started:.0f} s")

    trials = _study(tmp_path, "two").get_trials()
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 4
    # No other trial than a surplus one (two processes starting one trial too many at once).
    assert all(t.user_attrs.get("surplus") for t in trials if t not in finished)
    assert len({t.params["lambda_"] for t in finished}) == 4
    assert len({t.user_attrs["runs"][0] for t in finished}) == 4
    assert len({t.user_attrs["process"] for t in finished}) == 2  # both took part
    # The shared first cycle was trained once, by one of them.
    assert sum(out.count("training the shared first cycle") for out in outputs) == 1
    best = max(finished, key=lambda t: t.value if t.value is not None else -1)
    assert tuned_values(str(tmp_path / "tuned.json"), "sample", "ewc") == best.params
    entry = read_json(str(tmp_path / "tuned.json"))["methods"]["ewc"]
    assert entry["study_name"] == "two" and entry["trials"]["complete"] == 4
    assert {"date", "command", "git_revision", "storage", "objective_name"} <= set(entry)
    # Every trial of the study, beside the tuned file (both processes wrote it at their end).
    frame = pd.read_csv(tmp_path / "two-trials.csv")
    assert list(frame["number"]) == [t.number for t in trials]
    assert (frame["state"].isin(["complete", "pruned"])).sum() == 4
    assert (tmp_path / "two-trials.png").exists()


@pytest.mark.slow
def test_a_killed_process_trial_is_failed_and_run_again(tiny_data_dir, tmp_path):
    command = _tune(tiny_data_dir, tmp_path, "kill", "--trials=2", "--heartbeat_interval=1",
                    "--grace_period=5")
    first_run = tmp_path / "runs" / "sample-tune-kill-t0-seed0"
    victim = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.time() + 900
    while not (first_run / "config.json").exists():  # trial 0's run has started
        assert victim.poll() is None and time.time() < deadline
        time.sleep(0.5)
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True,
                            timeout=1500)
    assert result.returncode == 0, result.stdout + result.stderr
    trials = _study(tmp_path, "kill").get_trials()
    assert trials[0].state == TrialState.FAIL
    retried = [t for t in trials if t.user_attrs.get(RUNS_OF) == 0 and t.number != 0]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == trials[0].params
    assert retried[0].user_attrs["runs"] == [str(first_run)]  # it continued trial 0's folder
    finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2
    assert len(read_json(str(first_run / "state.json"))["cycles"]) == 2


def test_without_optuna_the_tuner_ends_with_a_one_line_hint(tiny_data_dir, tmp_path):
    # Optuna made unimportable in the child: every module that needs it (the study and the
    # trials report) must be imported after the check that turns its absence into the hint.
    child = ("import runpy, sys; sys.modules['optuna'] = None; "
             "sys.argv = ['ader_tf.tune', *sys.argv[1:]]; "
             "runpy.run_module('ader_tf.tune', run_name='__main__')")
    result = subprocess.run([sys.executable, "-c", child,
                             *_tune(tiny_data_dir, tmp_path, "no-optuna")[3:]],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert "tuning needs Optuna: pip install -e '.[tune]'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "runs").exists()
