"""What a run reports after each cycle: its files and its TensorBoard scalars."""

from __future__ import annotations

import collections
import csv
import glob
import json
import os
from types import SimpleNamespace

import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import RunPaths
from ader_tf.continual.forgetting import forgetting_summary
from ader_tf.continual.reporting import (
    cycle_row,
    probe_rows,
    write_cycle_scalars,
    write_run_files,
)
from ader_tf.plugins import make_config


def finished_cycle(cycle: int, probes: bool) -> dict:
    """A finished cycle's row as the runner records it; recall falls with the probe's age."""
    test = SimpleNamespace(mrr20=0.2 + cycle / 100, recall20=0.5 + cycle / 100, mrr10=0.1,
                           recall10=0.4, ndcg20=0.3, ndcg10=0.25, num_examples=100 + cycle)
    training = SimpleNamespace(epochs_run=3, best_epoch=2, valid_recall20=0.5, seconds=1.0)
    row = cycle_row(cycle, 50, test, training, 0.5, 10, (1.0, 0.5, 0.25), [f"cycle {cycle}"])
    row.update(cpu_seconds=2.0, peak_rss_gb=1.0)
    if probes:
        row["probe_seconds"] = 0.5
        row["probes"] = [
            {"cycle": cycle, "period": p, "recall20": 0.6 - (cycle - p) / 20, "mrr20": 0.2,
             "ndcg20": 0.3, "probe_examples": 10}
            for p in range(4)
        ]
    return row


@pytest.mark.parametrize("probe_fraction", [0.0, 0.1])
def test_run_files_are_rewritten_from_the_finished_cycles(tmp_path, probe_fraction):
    config = make_config(save_dir="report", probe_fraction=probe_fraction)
    paths = RunPaths(str(tmp_path / "run"))
    rows = [finished_cycle(c, probe_fraction > 0) for c in (1, 2, 3)]
    summary = write_run_files(paths, config, rows)

    with open(paths.file("summary.json")) as f:
        assert json.load(f) == json.loads(json.dumps(summary))
    assert summary["cycles_completed"] == 3
    assert summary["mean"]["recall20"] == pytest.approx(0.52)
    with open(paths.file("metrics.csv")) as f:
        metrics = list(csv.DictReader(f))
    assert [int(r["cycle"]) for r in metrics] == [1, 2, 3]
    assert ("probe_seconds" in metrics[0]) == (probe_fraction > 0)
    assert os.path.exists(paths.file("metrics.png"))
    matrix_file = paths.file("accuracy_matrix.csv")
    if not probe_fraction:
        # The paper's protocol: no matrix, no forgetting figures.
        assert not os.path.exists(matrix_file) and "forgetting" not in summary
        return
    with open(matrix_file) as f:
        assert len(list(csv.DictReader(f))) == 12
    assert os.path.exists(paths.file("accuracy_matrix.png"))
    assert summary["forgetting"] == forgetting_summary(probe_rows(rows))
    # Each probe period loses 0.05 a cycle: the last model keeps less of every period.
    assert summary["forgetting"]["bwt"] < 0


def scalars(logdir: str) -> dict[str, dict[int, float]]:
    """Every scalar of the event files under ``logdir``: tag -> {step: value}."""
    out: dict[str, dict[int, float]] = collections.defaultdict(dict)
    for path in glob.glob(os.path.join(logdir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                out[value.tag][event.step] = float(tf.make_ndarray(value.tensor))
    return out


def test_cycle_scalars_add_the_matrix_so_far(tmp_path):
    rows = [finished_cycle(c, probes=True) for c in (1, 2, 3)]
    plain = finished_cycle(4, probes=False)
    writer = tf.summary.create_file_writer(str(tmp_path))
    for i, row in enumerate(rows):
        write_cycle_scalars(writer, row, rows[:i])
    write_cycle_scalars(writer, plain, rows)
    writer.close()

    got = scalars(str(tmp_path))
    assert got["test/recall20"] == pytest.approx({1: 0.51, 2: 0.52, 3: 0.53, 4: 0.54})
    assert got["probe/period_0/recall20"] == pytest.approx({1: 0.55, 2: 0.50, 3: 0.45})
    # Step c carries the measures of cycles 1..c (BWT needs a period learned two cycles back).
    assert set(got["forgetting/bwt"]) == {2, 3}
    assert got["forgetting/bwt"][3] == pytest.approx(forgetting_summary(probe_rows(rows))["bwt"])
    # A cycle without probes writes its test metrics only.
    assert 4 not in got["probe/period_0/recall20"] and 4 not in got["forgetting/bwt"]
