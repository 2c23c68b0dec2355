"""A study's trials as CSV and plot, and best values at an end of their range."""

from __future__ import annotations

import datetime

import optuna
import pandas as pd
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState, create_trial

from ader_tf.search_space import Choice, FloatRange
from ader_tf.tuning_report import at_range_end, write_trials_csv, write_trials_plot

SPACE = (FloatRange("lambda_", 1e-4, 10.0, log=True), FloatRange("sacaisr_max_p", 0.0, 0.95))
START = datetime.datetime(2026, 12, 7, 12, 0)


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize")
    dist = {"lambda_": FloatDistribution(1e-4, 10.0, log=True),
            "sacaisr_max_p": FloatDistribution(0.0, 0.95)}
    for lam, p, state, value, steps in (
            (0.1, 0.5, TrialState.COMPLETE, 0.40, {0: 0.41, 1: 0.40}),
            (0.001, 0.2, TrialState.PRUNED, None, {0: 0.35}),
            (5.0, 0.9, TrialState.FAIL, None, {})):
        study.add_trial(create_trial(
            state=state, value=value, params={"lambda_": lam, "sacaisr_max_p": p},
            distributions=dist, intermediate_values=steps,
            user_attrs={"runs_of_trial": 0} if state == TrialState.FAIL else {}))
    return study


def test_every_trial_is_a_row_with_its_values_steps_and_runs(tmp_path):
    path = tmp_path / "s-trials.csv"
    write_trials_csv(_study(), str(path))
    frame = pd.read_csv(path)
    assert list(frame["state"]) == ["complete", "pruned", "fail"]
    assert list(frame["--lambda_"]) == [0.1, 0.001, 5.0]
    assert frame["objective"].iloc[0] == 0.40 and frame["objective"].iloc[1:].isna().all()
    assert list(frame["step_0"].iloc[:2]) == [0.41, 0.35] and pd.isna(frame["step_1"].iloc[1])
    assert list(frame["runs_of_trial"]) == [0, 1, 0]  # the failed one retried trial 0's runs


def test_a_best_value_at_an_end_of_its_range_is_named():
    assert at_range_end(SPACE, {"lambda_": 1.2e-4, "sacaisr_max_p": 0.5}) == [
        "--lambda_=0.00012 (low end of 0.0001..10)"]  # log range: 1.2e-4 is near 1e-4
    assert at_range_end(SPACE, {"lambda_": 0.03, "sacaisr_max_p": 0.94}) == [
        "--sacaisr_max_p=0.94 (high end of 0..0.95)"]
    # 0.0002 is 6% of the log range from its low end, 0.05 is 5.3% of the linear one.
    assert at_range_end(SPACE, {"lambda_": 2e-4, "sacaisr_max_p": 0.05}) == []
    assert at_range_end((Choice("x", (1, 2)),), {"x": 1}) == []


def test_the_plot_is_written(tmp_path):
    path = tmp_path / "s-trials.png"
    write_trials_plot(_study(), SPACE, str(path), "s")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
