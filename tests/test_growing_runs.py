"""Runs whose data grows: periods arriving one at a time, item tables that grow with them."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ader_tf.continual import runner as runner_module
from ader_tf.continual.runner import ContinualRunner, run
from tests.helpers import METHOD_FLAGS, results
from tests.helpers import tiny_config as _config

# One xdist worker runs this module's tests: they share the session's finished tiny runs.
pytestmark = pytest.mark.xdist_group("tiny_runs")

# ADER (teacher, exemplars), EWC (importance), SA-CAISR (a teacher that scores new items).
METHODS = ("ader", "ewc", "sacaisr")


def _stream(tiny_data_dir: str, root, periods: int) -> str:
    """A data folder whose dataset STREAM holds the sample's first ``periods`` files."""
    folder = os.path.join(root, "data", "STREAM")
    os.makedirs(folder, exist_ok=True)
    for p in range(periods):
        name = f"period_{p}.txt"
        if not os.path.exists(os.path.join(folder, name)):
            shutil.copy(os.path.join(tiny_data_dir, "sample", name), folder)
    return os.path.join(root, "data")


def _max_items(run_dir: str) -> list[int]:
    with open(os.path.join(run_dir, "state.json")) as f:
        return [int(c["max_item"]) for c in json.load(f)["cycles"]]


@pytest.mark.parametrize("name", METHODS)
def test_periods_arriving_one_at_a_time_give_the_all_at_once_run(
    finished, tiny_data_dir, tmp_path, name
):
    """The same command run again after a period arrived trains only the new cycle, as a
    run that found every period at start trains it (here: the sample's finished run)."""
    flags = METHOD_FLAGS[name]
    at_once = finished(name).paths.root
    data_dir = _stream(tiny_data_dir, tmp_path / "b", 2)
    first = ContinualRunner(_config(data_dir, tmp_path / "b", dataset="STREAM", **flags))
    assert first.run()["cycles_completed"] == 1
    cycle_1_items = first.model.encoder.num_items
    _stream(tiny_data_dir, tmp_path / "b", 3)  # the next period arrives; the same command
    later = ContinualRunner(_config(data_dir, tmp_path / "b", dataset="STREAM", **flags))
    assert later.run()["cycles_completed"] == 2

    items = _max_items(str(tmp_path / "b" / "STREAM-ADER"))
    assert items[0] == cycle_1_items < items[1] == later.model.encoder.num_items  # it grew
    assert results(tmp_path / "b" / "STREAM-ADER") == results(at_once)
    with open(tmp_path / "b" / "STREAM-ADER" / "Training_logs.txt") as f:
        assert f.read().count("Period ") == 2


def test_a_run_made_before_tables_grew_resumes_at_its_table_size(
    tiny_data_dir, tmp_path, monkeypatch
):
    """Runs made before this change sized the table to every item of every period file.

    Such a run (cycle 1 built at the full size here) resumes with its large table, and ends
    as a run whose table grew, given the same initial scale: rows of items not yet seen are
    never trained, so the two are the same computation.
    """
    data_dir = _stream(tiny_data_dir, tmp_path, 3)
    every_item = 0
    for p in range(3):
        with open(os.path.join(data_dir, "STREAM", f"period_{p}.txt")) as f:
            every_item = max([every_item, *(int(line.split()[1]) for line in f)])
    monkeypatch.setitem(runner_module.ORIGINAL_TABLE_ITEMS, "STREAM", every_item)
    grown = run(_config(data_dir, tmp_path / "grown", dataset="STREAM"))

    fresh_model = ContinualRunner._fresh_model

    def full_size(self, cycle, num_items, lineage=None):
        fresh_model(self, cycle, every_item, lineage)

    monkeypatch.setattr(ContinualRunner, "_fresh_model", full_size)
    run(_config(data_dir, tmp_path / "old", dataset="STREAM", cycles=1))
    monkeypatch.setattr(ContinualRunner, "_fresh_model", fresh_model)
    resumed = ContinualRunner(_config(data_dir, tmp_path / "old", dataset="STREAM"))
    assert resumed.run()["cycles_completed"] == 2
    assert resumed.model.encoder.num_items == every_item > _max_items(
        str(tmp_path / "old" / "STREAM-ADER"))[1]
    assert results(tmp_path / "old" / "STREAM-ADER") == results(
        tmp_path / "grown" / "STREAM-ADER")
    assert grown["cycles_completed"] == 2
