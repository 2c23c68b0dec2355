"""Period files: parsing, session grouping and errors that name file and line."""

import os

import numpy as np
import pytest

from ader_tf.data.periods import (
    PeriodFileError,
    Sessions,
    group_sessions,
    list_period_files,
    read_period_sessions,
)
from tests.conftest import write_period_files


def test_sessions_grouped_in_first_appearance_order(tmp_path):
    path = write_period_files(str(tmp_path), [[(7, 1), (3, 2), (7, 3), (5, 4), (3, 5), (7, 6)]])
    sessions = read_period_sessions(os.path.join(path, "period_0.txt"))
    assert sessions.as_lists() == [[1, 3, 6], [2, 5], [4]]
    assert sessions.lengths.tolist() == [3, 2, 1]


@pytest.mark.parametrize(
    "line, problem",
    [
        ("1 2 3", "two positive integers"),
        ("1", "two positive integers"),
        ("a 2", "two positive integers"),
        ("1 -2", "two positive integers"),
        ("0 2", "positive"),
        ("", "two positive integers"),
        ("1  2", "two positive integers"),
    ],
)
def test_bad_line_names_file_line_and_text(tmp_path, line, problem):
    path = tmp_path / "period_0.txt"
    path.write_text(f"1 1\n2 2\n{line}\n3 3\n")
    with pytest.raises(PeriodFileError) as err:
        read_period_sessions(str(path))
    message = str(err.value)
    assert f"{path}:3:" in message
    assert problem in message
    assert repr(line) in message


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(PeriodFileError, match="not found"):
        read_period_sessions(str(tmp_path / "period_0.txt"))
    (tmp_path / "period_0.txt").write_text("")
    with pytest.raises(PeriodFileError, match="empty"):
        read_period_sessions(str(tmp_path / "period_0.txt"))


def test_list_period_files_requires_contiguous_numbers(tmp_path):
    write_period_files(str(tmp_path), [[(1, 1)], [(2, 2)]])
    assert [os.path.basename(p) for p in list_period_files(str(tmp_path))] == [
        "period_0.txt", "period_1.txt"]
    (tmp_path / "period_3.txt").write_text("1 1\n")
    with pytest.raises(PeriodFileError, match=r"missing \[2\]"):
        list_period_files(str(tmp_path))


def test_select_and_concatenate_keep_sessions_apart():
    a = group_sessions(np.array([1, 1, 2]), np.array([5, 6, 7]))
    b = group_sessions(np.array([1, 1]), np.array([8, 9]))
    both = Sessions.concatenate([a, b])
    assert both.as_lists() == [[5, 6], [7], [8, 9]]
    assert both.select(np.array([True, False, True])).as_lists() == [[5, 6], [8, 9]]
