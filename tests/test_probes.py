"""Probes end to end: never trained on, evaluated after every cycle, resumable, and absent
(every number unchanged) at --probe_fraction=0."""

from __future__ import annotations

import collections
import csv
import dataclasses
import glob
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import METRIC_COLUMNS
from ader_tf.continual.forgetting import MATRIX_COLUMNS, forgetting_summary
from ader_tf.continual.learners.neural import PROBE_BATCH, NeuralLearner
from ader_tf.continual.probes import evaluate_probes
from ader_tf.continual.runner import ContinualRunner
from ader_tf.data import pipeline
from ader_tf.data.examples import examples_from_sessions
from tests.helpers import TINY_SAMPLE, metrics_rows, tiny_config

# One xdist worker runs this module's tests: they share the recorded probe run.
pytestmark = pytest.mark.xdist_group("probe_runs")

FRACTION = 0.3
# Columns that differ between two runs of one config only by the time they took.
TIMINGS = ("train_seconds", "selection_seconds", "test_seconds", "cpu_seconds", "peak_rss_gb")


def _rows(examples) -> collections.Counter:
    """Examples as a multiset of the session prefixes they hold (inputs, then target)."""
    return collections.Counter(map(tuple, examples.sessions()))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """The tiny sample with four periods: three cycles."""
    from ader_tf.data.sample import write_sample_dataset

    folder = tmp_path_factory.mktemp("probe_data")
    write_sample_dataset(str(folder / "sample"), dataclasses.replace(TINY_SAMPLE, num_periods=4))
    return str(folder)


@pytest.fixture(scope="module")
def recorded(data_dir, tmp_path_factory):
    """A 3-cycle ADER run with probes, and every row of every training batch it fed to fit:
    ``(runner, {cycle: [(current rows, exemplar rows) per epoch]})``."""
    batches: dict[int, list[tuple[collections.Counter, collections.Counter]]] = {}
    current = {}
    patch = pytest.MonkeyPatch()
    train_epoch, training_dataset = NeuralLearner.train_epoch, pipeline.training_dataset

    def recording_epoch(self, cycle, epoch, data):
        current["cycle"] = cycle
        return train_epoch(self, cycle, epoch, data)

    def recording_dataset(*args, **kwargs):
        dataset = training_dataset(*args, **kwargs)
        rows = (collections.Counter(), collections.Counter())
        # The batches fit sees: each pass restarts the generator with the epoch's seed.
        for features, targets in dataset:
            ids, exemplar = features["item_ids"].numpy(), features["is_exemplar"].numpy()
            for row, target, is_exemplar in zip(ids, targets.numpy(), exemplar):
                rows[int(is_exemplar)][tuple(row[row != 0].tolist()) + (int(target),)] += 1
        batches.setdefault(current["cycle"], []).append(rows)
        return dataset

    patch.setattr(NeuralLearner, "train_epoch", recording_epoch)
    # The learner imports it from the pipeline when an epoch starts.
    patch.setattr(pipeline, "training_dataset", recording_dataset)
    try:
        runner = ContinualRunner(tiny_config(data_dir, tmp_path_factory.mktemp("probed"),
                                             probe_fraction=FRACTION))
        runner.run()
        runner.writer.flush()
    finally:
        patch.undo()
    return runner, batches


def test_no_probe_session_reaches_training_batches_or_exemplars(recorded):
    runner, batches = recorded
    data = runner.data
    assert sorted(batches) == [1, 2, 3]
    # What each period may give training: the prefixes of its sessions outside the probe.
    allowed = {p: _rows(examples_from_sessions(data.training_sessions(p), data.maxlen))
               for p in range(data.num_periods)}
    probes = {p: _rows(examples_from_sessions(data.probe_sessions(p), data.maxlen))
              for p in range(data.num_periods)}
    # Prefixes only a probe session holds: the identity check needs some.
    every_allowed = sum(allowed.values(), collections.Counter())
    only_probe = {row for p in probes for row in probes[p] if row not in every_allowed}
    assert len(only_probe) > 20
    for cycle, epochs in batches.items():
        earlier = sum((allowed[p] for p in range(cycle - 1)), collections.Counter())
        for rows, exemplar_rows in epochs:
            # Each current row is one of a non-probe session's prefixes, counted: a probe
            # session repeating another's clicks would add a row beyond the allowed count.
            assert not rows - allowed[cycle - 1] and rows.total() > 0
            assert not exemplar_rows - (earlier + allowed[cycle - 2] if cycle > 1 else earlier)
            assert not (set(rows) | set(exemplar_rows)) & only_probe
        assert (cycle > 1) == any(ex.total() for _, ex in epochs)  # exemplars are replayed
    for cycle in (1, 2, 3):
        with np.load(runner.paths.exemplars(cycle) + ".npz") as stored:
            kept = collections.Counter(
                tuple(row[row != 0].tolist()) + (int(t),)
                for row, t in zip(stored["inputs"], stored["targets"]))
        learned = sum((allowed[p] for p in range(cycle)), collections.Counter())
        assert kept.total() > 0 and not kept - learned and not set(kept) & only_probe


def test_the_matrix_holds_every_period_after_every_cycle(recorded):
    runner, _ = recorded
    with open(runner.paths.file("accuracy_matrix.csv"), newline="") as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == MATRIX_COLUMNS
        matrix = list(reader)
    assert [(int(r["cycle"]), int(r["period"])) for r in matrix] == [
        (c, p) for c in (1, 2, 3) for p in range(4)]
    assert all(0 <= float(r["recall20"]) <= 1 and int(r["probe_examples"]) > 0 for r in matrix)
    # The last cycle's cells are its model's metrics on the probes (the model is cycle 3's):
    # ranked in one pass, they are each probe's own ranking (up to float order in a batch).
    probes, max_item = runner.data.probe_examples(3), int(runner.state.last["max_item"])
    again = evaluate_probes(runner.learner, runner.data, 3, max_item)
    assert again == runner.state.last["probes"]
    assert [{k: str(v) for k, v in cell.items()} for cell in again] == matrix[-4:]
    for row in matrix[-4:]:
        alone = runner.learner.evaluate(3, probes[int(row["period"])], max_item, probes=True)
        assert int(row["probe_examples"]) == alone.num_examples == len(
            probes[int(row["period"])])
        assert float(row["recall20"]) == pytest.approx(alone.recall20,
                                                       abs=1.01 / alone.num_examples)
    with open(runner.paths.file("summary.json")) as f:
        summary = json.load(f)
    assert summary["forgetting"] == forgetting_summary(matrix)
    assert summary["forgetting"]["cycles"] == 3
    assert summary["forgetting"]["plasticity"] is not None
    assert summary["seconds"]["probe_seconds"] > 0
    with open(runner.paths.file("accuracy_matrix.png"), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = metrics_rows(runner.paths.file("metrics.csv"))
    assert list(rows[0]) == [*METRIC_COLUMNS, "probe_seconds"]
    assert all(float(r["probe_seconds"]) > 0 for r in rows)


def test_probe_scalars_reach_tensorboard(recorded):
    runner, _ = recorded
    tags = collections.Counter()
    for path in glob.glob(os.path.join(runner.paths.tensorboard, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags.update(value.tag for value in event.summary.value)
    assert tags["probe/period_0/recall20"] == tags["probe/period_3/mrr20"] == 3
    assert tags["forgetting/plasticity"] == 3
    # Defined from cycle 2 on, when a period (0) was learned before the last cycle.
    assert tags["forgetting/bwt"] == tags["forgetting/average_past"] == 2


def test_probes_are_ranked_in_larger_batches_than_the_test_set(recorded, monkeypatch):
    from ader_tf import evaluation

    runner, _ = recorded
    sizes = []
    rank = evaluation.evaluate_ranks
    monkeypatch.setattr(evaluation, "evaluate_ranks",
                        lambda fn, examples, batch, desc: sizes.append(batch)
                        or rank(fn, examples, batch, desc))
    examples = runner.data.probe_examples(3)[1]
    max_item = int(runner.state.last["max_item"])
    probe_ranks = runner.learner.target_ranks(3, examples, max_item, probes=True)
    test_ranks = runner.learner.target_ranks(3, examples, max_item)
    assert sizes == [PROBE_BATCH, runner.config.test_batch] and sizes[1] < PROBE_BATCH
    # On the tiny model both batch shapes round alike.
    np.testing.assert_array_equal(probe_ranks, test_ranks)


class _StoppedError(Exception):
    """Stands for a kill between a cycle's outputs and its state."""


def test_a_run_stopped_before_its_state_was_saved_writes_the_same_matrix(
        recorded, data_dir, tmp_path):
    """Stopped after cycle 2 wrote its outputs but not state.json (the last write of a
    cycle), then started again: cycle 2 is redone and the matrix is the uninterrupted one's."""
    straight, _ = recorded
    config = tiny_config(data_dir, tmp_path, probe_fraction=FRACTION)

    def stop(cycle, phase):
        if (cycle, phase) == (2, "outputs_written"):
            raise _StoppedError

    with pytest.raises(_StoppedError):
        ContinualRunner(config, on_phase=stop).run()
    assert len(ContinualRunner(config).state.cycles) == 1
    resumed = ContinualRunner(config)
    resumed.run()
    for name in ("accuracy_matrix.csv",):
        with open(resumed.paths.file(name)) as a, open(straight.paths.file(name)) as b:
            assert a.read() == b.read()
    ours, theirs = (metrics_rows(r.paths.file("metrics.csv")) for r in (resumed, straight))
    drop = (*TIMINGS, "probe_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in ours] == [
        {k: v for k, v in r.items() if k not in drop} for r in theirs]


def test_no_probe_is_the_protocol_to_every_digit(tiny_data_dir, tmp_path):
    """--probe_fraction=0 writes the metrics.csv of a run that does not give the flag: the
    same columns and every number but the timings, and no probe output."""
    given = ContinualRunner(tiny_config(tiny_data_dir, tmp_path / "given", probe_fraction=0.0))
    given.run()
    absent = ContinualRunner(tiny_config(tiny_data_dir, tmp_path / "absent"))
    absent.run()
    assert given.config.fingerprint() == absent.config.fingerprint()
    ours, theirs = (metrics_rows(r.paths.file("metrics.csv")) for r in (given, absent))
    assert list(ours[0]) == list(theirs[0]) == list(METRIC_COLUMNS)
    assert [{k: v for k, v in r.items() if k not in TIMINGS} for r in ours] == [
        {k: v for k, v in r.items() if k not in TIMINGS} for r in theirs]
    with open(given.paths.file("summary.json")) as f:
        summary = json.load(f)
    assert "forgetting" not in summary and "probe_seconds" not in summary["seconds"]
    assert not glob.glob(given.paths.file("accuracy_matrix.*"))
    assert all("probes" not in row for row in given.state.cycles)


def test_session_knn_remembers_no_probe_and_ranks_every_probe(data_dir, tmp_path):
    runner = ContinualRunner(tiny_config(data_dir, tmp_path, model="vsknn", joint=True,
                                         probe_fraction=FRACTION))
    runner.run()
    data = runner.data
    for cycle in (1, 2, 3):
        remembered = collections.Counter(map(tuple, runner.learner.memory(cycle).as_lists()))
        allowed = collections.Counter(
            tuple(s) for p in range(cycle) for s in data.training_sessions(p).as_lists())
        assert remembered == allowed
    with open(runner.paths.file("summary.json")) as f:
        assert json.load(f)["forgetting"]["cycles"] == 3
    assert len(metrics_rows(runner.paths.file("accuracy_matrix.csv"))) == 12
