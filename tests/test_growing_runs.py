"""Runs whose data grows: periods arriving one at a time, item tables that grow with them."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ader_tf.continual.artifacts import checkpoint_prefix, stored_item_count
from ader_tf.continual.learners import neural
from ader_tf.continual.learners.neural import NeuralLearner
from ader_tf.continual.runner import ContinualRunner, run
from ader_tf.models.growth import table_items
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


def _table_sizes(runner: ContinualRunner) -> list[int]:
    """The item-table size each cycle's best checkpoint holds."""
    with open(runner.paths.file("state.json")) as f:
        cycles = json.load(f)["cycles"]
    return [stored_item_count(checkpoint_prefix(runner.paths, int(c["cycle"]),
                                                int(c["best_epoch"]))) for c in cycles]


def test_table_items_grow_by_the_factor_within_the_limit_and_never_below_the_need():
    assert table_items(100, 90, 2.0) == table_items(100, 100, 2.0) == 100  # room: no rebuild
    assert table_items(100, 101, 2.0) == 200
    assert table_items(100, 101, 1.5) == 150
    assert table_items(100, 101, 1.0) == 101  # exact tables
    assert table_items(100, 250, 2.0) == 250  # the need wins over the factor
    assert table_items(100, 101, 2.0, limit=120) == 120
    assert table_items(100, 130, 2.0, limit=120) == 130  # a limit never starves the data


# GRU4Rec's own trainer draws negatives by popularity over the items known, not the rows.
SESSION_PARALLEL = {"model": "gru4rec", "gru4rec_training": "session_parallel", "finetune": True,
                    "gru4rec_n_sample": 16}


@pytest.mark.parametrize("flags", [{}, SESSION_PARALLEL], ids=["ader", "gru4rec_session_parallel"])
def test_spare_rows_change_no_result(finished, tiny_data_dir, tmp_path, flags):
    """The default (tables grow twice as large when too small) and exact tables (1x) give the
    same metrics: the second cycle trains with spare rows in one and none in the other."""
    if flags:
        spare = ContinualRunner(_config(tiny_data_dir, tmp_path / "spare", **flags))
        spare.run()
    else:
        spare = finished("ader")
    exact = ContinualRunner(_config(tiny_data_dir, tmp_path / "exact", table_growth=1.0,
                                    **flags))
    exact.run()
    assert results(exact.paths.root) == results(spare.paths.root)

    items = _max_items(spare.paths.root)
    assert _table_sizes(exact) == items
    sizes = _table_sizes(spare)
    expected = [items[0]]
    for needed in items[1:]:
        expected.append(table_items(expected[-1], needed, 2.0))
    assert sizes == expected
    assert sizes[-1] > items[-1]  # spare rows


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
    assert items[0] == cycle_1_items < items[1] == later.model.max_item  # it grew
    assert later.model.encoder.num_items == table_items(cycle_1_items, items[1], 2.0)
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
    monkeypatch.setitem(neural.ORIGINAL_TABLE_ITEMS, "STREAM", every_item)
    grown = run(_config(data_dir, tmp_path / "grown", dataset="STREAM"))

    fresh_model = NeuralLearner.fresh_model

    def full_size(self, cycle, num_items, lineage=None):
        fresh_model(self, cycle, every_item, lineage)

    monkeypatch.setattr(NeuralLearner, "fresh_model", full_size)
    run(_config(data_dir, tmp_path / "old", dataset="STREAM", cycles=1))
    monkeypatch.setattr(NeuralLearner, "fresh_model", fresh_model)
    resumed = ContinualRunner(_config(data_dir, tmp_path / "old", dataset="STREAM"))
    assert resumed.run()["cycles_completed"] == 2
    assert resumed.model.encoder.num_items == every_item > _max_items(
        str(tmp_path / "old" / "STREAM-ADER"))[1]
    assert results(tmp_path / "old" / "STREAM-ADER") == results(
        tmp_path / "grown" / "STREAM-ADER")
    assert grown["cycles_completed"] == 2
