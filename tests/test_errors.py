"""One base error, caught once: every command line prints `error: <one line>` and its exit code.

The readers' own messages (file and line of every kind of bad line) are covered property-based
in test_malformed_input.py; here a bad file goes through the command lines' entry points.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ader_tf.continual.artifacts import RunStateError
from ader_tf.continual.exemplar_store import ExemplarFileError
from ader_tf.continual.runner import TrainingDivergedError
from ader_tf.continual.workers import WorkerLostError
from ader_tf.data.periods import PeriodFileError
from ader_tf.data.sources import DatasetNotFoundError
from ader_tf.errors import AderError, print_error
from ader_tf.evaluation import NonFiniteError
from ader_tf.io_utils import DamagedFileError
from ader_tf.report import ReportInputError
from preprocessing import PreprocessingError, RawDataError
from tests.conftest import REPO_ROOT
from tests.helpers import TINY

# Each class, the built-in base its callers catch, and its exit status.
ERRORS = [
    (NonFiniteError(1, 4, "scores"), ArithmeticError, 1),
    (RunStateError("x"), ValueError, 2),
    (WorkerLostError("x"), RuntimeError, 3),
    (TrainingDivergedError("x"), RuntimeError, 1),
    (ExemplarFileError("f.npz", "x"), ValueError, 2),
    (DatasetNotFoundError("x"), FileNotFoundError, 2),
    (PeriodFileError("x"), ValueError, 2),
    (DamagedFileError("f.npz", "x"), ValueError, 2),
    (PreprocessingError("x"), Exception, 2),
    (RawDataError("f.csv", 3, "a,b", "bad"), PreprocessingError, 2),
    (ReportInputError("x"), ValueError, 2),
]


@pytest.mark.parametrize("error,builtin,code", ERRORS, ids=lambda e: type(e).__name__)
def test_every_error_is_an_ader_error_and_keeps_its_builtin_base(error, builtin, code):
    assert isinstance(error, AderError) and isinstance(error, builtin)
    assert error.exit_code == code


def test_print_error_prints_one_line_and_returns_the_code(capsys):
    error = DamagedFileError("run/state.json", "not valid JSON (Expecting value:\n line 1)")
    assert print_error(error) == 2
    assert capsys.readouterr().err == "error: run/state.json: not valid JSON (Expecting value: " \
                                      "line 1)\n"
    assert print_error(TrainingDivergedError("cycle 2:\ttraining")) == 1
    assert capsys.readouterr().err == "error: cycle 2: training\n"


def test_raw_data_errors_name_path_and_line_as_period_files_do():
    assert str(RawDataError("raw/log.csv", 6, "x,y", "time is not a number")) == (
        "raw/log.csv:6: time is not a number: 'x,y'")
    assert str(RawDataError("log.parquet", 1, "?", "bad time", row_group=2)) == (
        "log.parquet: row group 2, row 1: bad time: '?'")
    assert str(RawDataError("log.csv", None, "", "cannot be read")) == "log.csv: cannot be read"


# === Through main.py ===


def _main(data_dir: Path, dataset: str, results_dir: Path) -> subprocess.CompletedProcess:
    flags = [f"--{k}={v}" for k, v in TINY.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "main.py", f"--dataset={dataset}", f"--data_dir={data_dir}",
         f"--results_dir={results_dir}", *flags],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


def _the_error_line(proc: subprocess.CompletedProcess) -> str:
    """The one `error: ` line of a run that failed on bad input; no traceback beside it."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, proc.stderr[-3000:]
    return errors[0]


def test_main_names_a_bad_line_of_a_period_file(tmp_path):
    folder = tmp_path / "data" / "SHOP"
    folder.mkdir(parents=True)
    good = "".join(f"{s} {i}\n" for s in range(1, 30) for i in (1 + s % 5, 2 + s % 7))
    (folder / "period_0.txt").write_text(good[:40] + "7 eight\n" + good[40:])
    for period in (1, 2, 3):
        (folder / f"period_{period}.txt").write_text(good)
    bad_line = good[:40].count("\n") + 1
    line = _the_error_line(_main(tmp_path / "data", "SHOP", tmp_path / "results"))
    assert line.startswith(f"error: {folder / 'period_0.txt'}:{bad_line}: "), line
    assert "'7 eight'" in line, line


def test_main_names_a_bad_line_of_a_raw_file_it_preprocesses(tmp_path):
    raw = tmp_path / "data" / "raw" / "train-item-views.csv"
    raw.parent.mkdir(parents=True)
    raw.write_text("sessionId;userId;itemId;timeframe;eventdate\n1;;2;5;2016-01-01\n"
                   "1;;2;five;2016-01-01\n")
    line = _the_error_line(_main(tmp_path / "data", "DIGINETICA", tmp_path / "results"))
    assert line == (f"error: {raw}:3: timeframe is not an integer: '1;;2;five;2016-01-01'"), line
    assert not (tmp_path / "data" / "DIGINETICA").exists()


# === Through python -m ader_tf.report ===


def test_report_names_a_log_without_test_lines(tmp_path):
    log = tmp_path / "orig" / "Training_logs.txt"
    log.parent.mkdir()
    log.write_text("dataset,DIGINETICA\nPeriod 1:\n")
    env = {**os.environ, "PYTHONPATH": REPO_ROOT}
    proc = subprocess.run(
        [sys.executable, "-m", "ader_tf.report", str(tmp_path), f"--reference_log={log}"],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr == (f"error: {log}: no 'Period N:' / 'epoch:N, test (...)' lines "
                           "found\n")
    proc = subprocess.run(
        [sys.executable, "-m", "ader_tf.report", str(tmp_path / "empty")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert re.fullmatch(r"error: .*empty: no runs \(folders with metrics.csv\) in it\n",
                        proc.stderr), proc.stderr
