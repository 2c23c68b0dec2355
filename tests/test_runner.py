"""The cycle loop end to end on a tiny sample: methods, outputs, resume, divergence."""

from __future__ import annotations

import dataclasses
import gc
import glob
import json
import os
import re
import shutil
import weakref

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import RunInUseError, RunStateError
from ader_tf.continual.runner import ContinualRunner, TrainingDivergedError, run
from ader_tf.data.sample import write_sample_dataset
from ader_tf.evaluation import NonFiniteError
from ader_tf.io_utils import held_or_refused
from ader_tf.plugins import make_config
from tests.helpers import METHOD_FLAGS, TINY, TINY_SAMPLE
from tests.helpers import metrics_rows as _rows
from tests.helpers import tiny_config as _config

# One xdist worker runs this module's tests: they share the session's finished tiny runs.
pytestmark = pytest.mark.xdist_group("tiny_runs")


@pytest.fixture(scope="module")
def data_dir(tiny_data_dir):
    return tiny_data_dir


PLAIN = ("ce_loss",)
# (flags, the objective's terms in cycle 2, keeps exemplars) of every method.
METHODS = {
    "ader": (METHOD_FLAGS["ader"], ("ce_loss", "kd_loss"), True),
    "er": (METHOD_FLAGS["er"], ("ce_loss", "er_loss"), True),
    "ewc": (METHOD_FLAGS["ewc"], ("ce_loss", "ewc_loss"), True),
    "finetune": (METHOD_FLAGS["finetune"], PLAIN, False),
    "dropout": (METHOD_FLAGS["dropout"], PLAIN, False),
    "joint": (METHOD_FLAGS["joint"], PLAIN, False),
    "lwf": (METHOD_FLAGS["lwf"], ("ce_loss", "kd_loss"), False),
    "agem": (METHOD_FLAGS["agem"], ("ce_loss",), True),
    "mas": (METHOD_FLAGS["mas"], ("ce_loss", "mas_loss"), False),
    "derpp": (METHOD_FLAGS["derpp"], ("ce_loss", "der_loss", "er_loss"), True),
    "reservoir": (METHOD_FLAGS["reservoir"], ("ce_loss", "er_loss"), True),
    "sacaisr": (METHOD_FLAGS["sacaisr"], ("ce_loss", "nce_loss"), False),
}


def _scalars(root: str) -> dict[str, list[float]]:
    """The TensorBoard scalars of a run: tag -> values in step order."""
    found: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(root, "tensorboard", "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                found.setdefault(value.tag, {})[event.step] = float(
                    tf.make_ndarray(value.tensor))
    return {tag: [v for _, v in sorted(steps.items())] for tag, steps in found.items()}


@pytest.mark.parametrize("name", list(METHODS))
def test_each_method_end_to_end(finished, name):
    flags, terms, keeps_exemplars = METHODS[name]
    export = not flags
    runner = finished(name)
    with open(runner.paths.file("summary.json")) as f:
        assert json.load(f)["cycles_completed"] == 2
    assert runner.model.objective.term_names == terms
    root = runner.paths.root
    rows = _rows(os.path.join(root, "metrics.csv"))
    assert [int(r["cycle"]) for r in rows] == [1, 2]
    assert all(0.0 <= float(r["recall20"]) <= 1.0 for r in rows)
    assert all(0.0 <= float(r["ndcg10"]) <= float(r["ndcg20"]) <= float(r["recall20"])
               for r in rows)
    lambdas = [float(r["lambda"]) for r in rows]
    assert lambdas[0] == 0.0
    assert (lambdas[1] > 0) == (terms not in (PLAIN, ("ce_loss",)))
    assert os.path.isfile(os.path.join(root, "exemplars", "cycle_2.npz")) == keeps_exemplars
    assert (int(rows[1]["exemplars_kept"]) > 0) == keeps_exemplars
    assert os.path.isdir(runner.paths.saved_model(2)) == export
    # Each cycle's own CPU time (not the process's so far: the test process ran other runs
    # before) and the process's peak memory so far, which cannot fall.
    for r in rows:
        wall = sum(float(r[k]) for k in ("train_seconds", "selection_seconds", "test_seconds"))
        assert 0 < float(r["cpu_seconds"]) <= (wall + 10) * os.cpu_count()
    peaks = [float(r["peak_rss_gb"]) for r in rows]
    assert 0.1 < peaks[0] <= peaks[1]
    for file in ("summary.json", "metrics.png", "Training_logs.txt", "config.json"):
        assert os.path.isfile(os.path.join(root, file))
    with open(os.path.join(root, "Training_logs.txt")) as f:
        log_text = f.read()
    assert log_text.count("Period ") == 2 and "Average: (MRR@20: " in log_text


def test_summary_means_are_those_of_metrics_csv(finished):
    root = finished("ader").paths.root
    rows = _rows(os.path.join(root, "metrics.csv"))
    with open(os.path.join(root, "summary.json")) as f:
        summary = json.load(f)
    assert summary["cycles_completed"] == len(rows) == 2
    for key in ("mrr20", "recall20", "mrr10", "recall10"):
        values = [float(row[key]) for row in rows]
        assert summary["mean"][key] == pytest.approx(np.mean(values), abs=1e-12), key
        assert [c[key] for c in summary["per_cycle"]] == pytest.approx(values, abs=1e-12)
    with open(os.path.join(root, "Training_logs.txt")) as f:
        average = f.read().split("Average: ")[1].splitlines()[0]
    assert f"RECALL@20: {summary['mean']['recall20']:.4f}" in average


METRICS = ("mrr20", "recall20", "mrr10", "recall10")


@pytest.mark.parametrize(
    "name, baseline, ranks_move",
    [("ader", "er", True), ("lwf", "dropout", False), ("derpp", "er", True),
     ("agem", "dropout", False), ("sacaisr", "dropout", True), ("ewc", "finetune", False),
     ("mas", "finetune", False)],
)
def test_a_method_changes_cycle_2(finished, name, baseline, ranks_move):
    """Cycle 1 trains on cross-entropy alone, so a method equals its baseline there to the
    last digit; in cycle 2 its own term (distillation, replay, projection, penalty) must show.

    EWC's and MAS's penalties are too weak on the tiny sample to move a rank (lambda * F *
    (theta - anchor)^2, a few Adam steps from the anchor), so for them only the trained
    weights must differ; a penalty that contributed nothing would leave them bit for bit equal.
    So is LwF's distillation on the current rows, towards a teacher the student has barely
    left after 2 tiny epochs: whether a test rank moves depends on the dropout stream and on
    how the batch is laid out, not on whether the term works.
    `test_objectives.py` tests its term on its own. A-GEM's projection fires on 2 of the 10
    steps of this cycle 2, which moves weights but no rank at this learning rate;
    `test_agem_projection_moves_ranks` gives it a run where it does.
    """
    ours, theirs = finished(name), finished(baseline)
    our_rows = _rows(ours.paths.file("metrics.csv"))
    their_rows = _rows(theirs.paths.file("metrics.csv"))
    assert [our_rows[0][k] for k in METRICS] == [their_rows[0][k] for k in METRICS]
    if ranks_move:
        assert [our_rows[1][k] for k in METRICS] != [their_rows[1][k] for k in METRICS]
    pairs = zip(ours.model.encoder.weights, theirs.model.encoder.weights, strict=True)
    assert any(not np.array_equal(np.asarray(a), np.asarray(b)) for a, b in pairs)


def test_agem_projection_moves_ranks(data_dir, tmp_path):
    """A-GEM against Dropout (the same cross-entropy on the new rows, no exemplars) with a
    learning rate and epochs where the projection moves test ranks of cycle 2 (here it fires on
    the first step, and cycle 2's MRR@20 moves by about 0.002): cycle 1 (no exemplars yet, so
    nothing to project on) is equal to the last digit and cycle 2 is not."""
    def cycle_metrics(name: str) -> list[list[str]]:
        runner = ContinualRunner(_config(data_dir, tmp_path / name, lr=0.01, num_epochs=4,
                                         stop=2, **METHOD_FLAGS[name]))
        runner.run()
        return [[row[k] for k in METRICS] for row in _rows(runner.paths.file("metrics.csv"))]

    agem, dropout = cycle_metrics("agem"), cycle_metrics("dropout")
    assert len(agem) == len(dropout) == 2
    assert agem[0] == dropout[0]
    assert agem[1] != dropout[1]


def test_length_groups_reach_the_encoder(data_dir, tmp_path):
    """--length_groups sets SASRec's groups (the tiny runs use 1; the default is 4)."""
    assert make_config().length_groups == 4
    runner = ContinualRunner(_config(data_dir, tmp_path, cycles=1, length_groups=3))
    runner.run()
    assert runner.model.encoder.length_groups == 3


@pytest.mark.parametrize("name", [n for n, (_, terms, _) in METHODS.items() if len(terms) > 1])
def test_continual_terms_are_trained_on_in_cycle_2_only(finished, name):
    """Read from the run's TensorBoard scalars: each term beyond cross-entropy is positive in
    every epoch of cycle 2 and absent from cycle 1 (plain cross-entropy)."""
    terms = METHODS[name][1]
    scalars = _scalars(finished(name).paths.root)
    for term in terms[1:]:
        assert f"cycle_1/train_{term}" not in scalars
        values = scalars[f"cycle_2/train_{term}"]
        assert values and all(v > 0 for v in values), (term, values)


def test_teacher_holds_the_previous_cycles_best_weights(data_dir, tmp_path):
    """The distillation teacher equals the previous cycle's best model in every weight.

    Regression: the teacher was once read from the checkpoint by itself, which restored only
    its embeddings (the checkpoint reaches the attention blocks through the optimizer's
    variable list) and left its blocks at their initial values without an error.
    """
    config = _config(data_dir, tmp_path, cycles=1)
    ContinualRunner(config).run()
    runner = ContinualRunner(config)
    assert runner._resume() == 2
    last = runner.state.last
    teacher = runner.learner.teacher(last)

    student = runner.model
    assert len(teacher.encoder.weights) == len(student.encoder.weights)
    for ours, theirs in zip(teacher.encoder.weights, student.encoder.weights):
        np.testing.assert_array_equal(np.asarray(ours), np.asarray(theirs), err_msg=ours.path)
    inputs = np.array([[0, 0, 3, 5, 7, 2], [0, 0, 0, 0, 1, 4]], dtype=np.int32)
    np.testing.assert_allclose(
        teacher.predict_logits(inputs).numpy(), student.predict_logits(inputs).numpy(), atol=1e-6
    )

    # A student whose weights no longer equal the checkpoint cannot pass as its teacher.
    kernel = next(w for w in student.encoder.weights if "block_0" in w.path and "kernel" in w.path)
    kernel.assign(kernel + 1.0)
    with pytest.raises(RunStateError, match="differ from the checkpoint"):
        runner.learner.teacher(last)


def test_cycles_leave_neither_their_examples_nor_new_functions_behind(tmp_path):
    """What a cycle builds is freed by the next ones (live memory once grew every cycle).

    Every cycle's examples are freed (datasets once kept theirs until the process ended), and
    TensorFlow's function library holds as many functions after every cycle from the second
    on: the objective of cycle 2 is kept, and a model rebuilt for larger item tables replaces
    the old one's functions rather than adding to them.
    """
    from tensorflow.python.eager import context

    data_dir = str(tmp_path / "data")  # the tiny sample over six periods: five cycles
    write_sample_dataset(os.path.join(data_dir, "sample"),
                         dataclasses.replace(TINY_SAMPLE, num_periods=6))
    examples, functions, tables = [], [], []

    def after(cycle, phase):
        if phase == "finished":
            gc.collect()
            functions.append(len(context.context().list_function_names()))
            tables.append(runner.model.encoder.num_items)

    # Exact tables: the model is rebuilt in every cycle that brings new items.
    runner = ContinualRunner(_config(data_dir, tmp_path / "run", table_growth=1.0),
                             on_phase=after)
    start_cycle = runner.learner.start_cycle

    def noting_start_cycle(cycle, data):
        examples.append(weakref.ref(data.train.inputs))
        return start_cycle(cycle, data)

    runner.learner.start_cycle = noting_start_cycle
    runner.run()
    gc.collect()
    assert len(set(tables[1:])) > 1, tables  # rebuilt after cycle 2
    assert functions[1:] == [functions[1]] * 4, (functions, tables)
    assert [ref() is None for ref in examples] == [True] * 5


def test_exemplar_quota_is_respected(data_dir, tmp_path):
    runner = ContinualRunner(_config(data_dir, tmp_path, exemplar_size=25, cycles=2))
    runner.run()
    assert 0 < len(runner.exemplars) <= 25


def test_mismatched_run_is_reported(data_dir, tmp_path):
    run(_config(data_dir, tmp_path, cycles=1))
    with pytest.raises(RunStateError, match="another config"):
        run(_config(data_dir, tmp_path, cycles=2, lr=1e-3))


def test_non_finite_loss_stops_the_run(data_dir, tmp_path, monkeypatch):
    runner = ContinualRunner(_config(data_dir, tmp_path, cycles=1))
    runner.learner.fresh_model(1, runner.data.cycle(1).max_item)

    class History:
        history = {"loss": [float("nan")]}

    monkeypatch.setattr(runner.model, "fit", lambda *a, **k: History())
    with pytest.raises(TrainingDivergedError, match="not finite"):
        runner.run_cycle(1)


def _last_good_checkpoint(message: str) -> str:
    """The folder a divergence message names as the last good checkpoint."""
    return re.search(r"the last good checkpoint is (\S+)$", message).group(1)


def test_scores_that_diverge_in_validation_stop_the_run(data_dir, tmp_path):
    """A real divergence: one batch per epoch at a learning rate of 7e5. Epoch 1's loss is
    measured before its one update, so it is finite; the updates break the weights, and a
    later epoch's validation has NaN scores (which one depends on the seed's draws: epoch 2 or
    3 here; at 1e6 already epoch 1's has). Before the check, NaN scores ranked every target
    first: a Recall@20 near 1 that early stopping kept as the best."""
    config = _config(data_dir, tmp_path, finetune=True, lr=7e5, batch_size=512, num_epochs=3,
                     stop=3, cycles=1)
    with pytest.raises(TrainingDivergedError) as raised:
        run(config)
    message = str(raised.value)
    found = re.match(r"cycle 1 validation epoch ([23]): \d+ of 36 rows have non-finite scores; "
                     r"the last good checkpoint is ", message)
    assert found, message
    assert isinstance(raised.value.__cause__, NonFiniteError)
    epoch = int(found.group(1))
    good = _last_good_checkpoint(message)
    # The best epoch before the divergence (only improvements are kept as checkpoints).
    kept = re.search(r"checkpoints/cycle_1/epoch_(\d+)$", good)
    assert kept and 1 <= int(kept.group(1)) < epoch, good
    assert os.path.isfile(os.path.join(good, "ckpt.index"))
    assert not os.path.exists(os.path.join(os.path.dirname(good), f"epoch_{epoch}"))


def test_session_parallel_divergence_stops_the_run(data_dir, tmp_path):
    """GRU4Rec's own trainer at a learning rate that breaks its scores in epoch 2 (a real
    divergence: its BPR-max score regulariser overflows); epoch 1's checkpoint stays."""
    config = _config(data_dir, tmp_path, model="gru4rec", gru4rec_training="session_parallel",
                     finetune=True, gru4rec_n_sample=16, lr=3e12, num_epochs=3, stop=3,
                     cycles=1)
    with pytest.raises(TrainingDivergedError) as raised:
        run(config)
    message = str(raised.value)
    assert re.match(r"cycle 1 epoch \d: loss is not finite .*; the last good checkpoint is ",
                    message), message
    good = _last_good_checkpoint(message)
    assert re.search(r"checkpoints/cycle_1/epoch_\d$", good), good
    assert os.path.isfile(os.path.join(good, "ckpt.index"))


@pytest.mark.parametrize("selection, what", [("herding", "session vectors"),
                                              ("loss", "losses")])
def test_non_finite_model_outputs_stop_exemplar_selection(data_dir, tmp_path, selection, what):
    """Herding on NaN session vectors, or picking by NaN losses, would keep arbitrary rows.

    Item 3's embedding is set to NaN: the session vectors of the rows that clicked it are NaN,
    and so is every row's loss (item 3 is scored in every row).
    """
    runner = ContinualRunner(_config(data_dir, tmp_path, selection=selection, cycles=1))
    runner.learner.fresh_model(1, runner.data.cycle(1).max_item)
    data = runner.data.cycle(1)
    runner.model.set_max_item(data.max_item)
    table = runner.model.encoder.item_embeddings
    table.assign(tf.tensor_scatter_nd_update(table, [[3]], [np.full(8, np.nan, np.float32)]))
    inputs = np.concatenate([data.train.inputs, data.valid.inputs])
    bad = int((inputs == 3).any(axis=1).sum()) if selection == "herding" else len(inputs)
    message = (f"cycle 1 exemplar selection: {bad} of {len(inputs)} rows have non-finite "
               f"{what}; the last good checkpoint is none")
    with pytest.raises(TrainingDivergedError, match=message), runner.learner.stop_if_not_finite(
        1, "exemplar selection", best_epoch=0
    ):
        runner._end_cycle(1, data, None)
    assert not os.path.exists(runner.paths.exemplars(1) + ".npz")


# === Other backbones ===


@pytest.mark.parametrize(
    "flags, encoder, terms",
    [
        ({"model": "gru4rec"}, "GRU4RecEncoder", ("ce_loss", "kd_loss")),
        ({"model": "stamp", "disable_distillation": True}, "STAMPEncoder", ("ce_loss", "er_loss")),
        ({"model": "stmp", "ewc": True}, "STAMPEncoder", ("ce_loss", "ewc_loss")),
        ({"model": "gru4rec", "gru4rec_training": "session_parallel", "finetune": True,
          "gru4rec_n_sample": 16, "batch_size": 8}, "GRU4RecEncoder", PLAIN),
        pytest.param({"model": "gru4rec", "method": "sacaisr"}, "GRU4RecEncoder",
                     ("ce_loss", "nce_loss"), id="sacaisr-gru4rec"),
    ],
)
def test_other_backbones_end_to_end(data_dir, tmp_path, flags, encoder, terms):
    runner = ContinualRunner(_config(data_dir, tmp_path, **flags))
    summary = runner.run()
    assert summary["cycles_completed"] == 2
    assert type(runner.model.encoder).__name__ == encoder
    assert runner.model.objective.term_names == terms
    rows = _rows(os.path.join(runner.paths.root, "metrics.csv"))
    assert all(0.0 < float(r["recall20"]) <= 1.0 for r in rows)
    assert all(int(r["best_epoch"]) >= 1 for r in rows)


def test_session_parallel_validates_on_held_out_sessions(data_dir, tmp_path):
    runner = ContinualRunner(_config(data_dir, tmp_path, model="gru4rec", finetune=True,
                                     gru4rec_training="session_parallel"))
    sessions, valid = runner.data.session_split(1)
    period = runner.data.sessions(0)
    assert 0 < len(sessions) < len(period)
    # Every validation example is a prefix of a session that training never sees.
    trained = {tuple(s) for s in sessions.as_lists()}
    held_out = [s for s in period.as_lists() if tuple(s) not in trained and len(s) > 1]
    assert len(valid) == sum(len(s) - 1 for s in held_out)


@pytest.mark.parametrize(
    "flags, memory_periods, with_exemplars",
    [
        ({"model": "sknn", "finetune": True}, [1], False),
        ({"model": "sknn", "finetune": True, "knn_window": 2}, [0, 1], False),
        ({"model": "vsknn", "joint": True}, [0, 1], False),
        ({"model": "sknn", "disable_distillation": True, "selection": "random"}, [1], True),
    ],
)
def test_session_knn_memories(data_dir, tmp_path, flags, memory_periods, with_exemplars):
    runner = ContinualRunner(_config(data_dir, tmp_path, **flags))
    summary = runner.run()
    assert summary["cycles_completed"] == 2 and runner.model is None
    rows = _rows(os.path.join(runner.paths.root, "metrics.csv"))
    assert all(0.0 < float(r["recall20"]) <= 1.0 for r in rows)
    assert all(int(r["epochs_run"]) == 0 for r in rows)
    expected = sum(len(runner.data.sessions(p)) for p in memory_periods)
    if with_exemplars:  # cycle 2 remembers the exemplars kept after cycle 1, then period 1
        runner.memory.load(1, int(runner.state.cycles[0]["max_item"]))
        expected += len(runner.exemplars)
    assert len(runner.learner.memory(2)) == expected
    assert os.path.isfile(os.path.join(runner.paths.root, "exemplars", "cycle_1.npz")) == (
        with_exemplars)


def test_session_knn_resumes_to_the_same_metrics(data_dir, tmp_path):
    flags = {"model": "vsknn", "disable_distillation": True, "selection": "random"}
    straight = run(_config(data_dir, tmp_path / "a", **flags))
    run(_config(data_dir, tmp_path / "b", cycles=1, **flags))
    resumed = run(_config(data_dir, tmp_path / "b", **flags))
    assert resumed["cycles_completed"] == 2
    assert resumed["mean"] == straight["mean"]


@pytest.mark.parametrize("name", ["lwf", "agem", "mas", "derpp", "reservoir", "sacaisr"])
def test_methods_resume_to_the_same_metrics(finished, data_dir, tmp_path, name):
    """A run stopped after cycle 1 and started again ends as one that never stopped: what the
    method keeps between cycles (teacher, importance, stored scores, reservoir) is restored.
    (The kill tests do the same for ADER, EWC and Joint at every phase.)"""
    flags = METHODS[name][0]
    straight = finished(name)
    run(_config(data_dir, tmp_path, cycles=1, **flags))
    resumed = run(_config(data_dir, tmp_path, **flags))
    assert resumed["cycles_completed"] == 2
    ours = _rows(os.path.join(tmp_path, "sample-ADER", "metrics.csv"))
    theirs = _rows(straight.paths.file("metrics.csv"))
    keys = ("mrr20", "recall20", "mrr10", "recall10", "lambda", "exemplars_kept", "best_epoch")
    assert [[r[k] for k in keys] for r in ours] == [[r[k] for k in keys] for r in theirs]
    with open(os.path.join(tmp_path, "sample-ADER", "Training_logs.txt")) as f:
        assert "minutes (cycles 2-2 in this process)\nDone.\n" in f.read()


def _tree(root: str) -> dict[str, bytes]:
    """Every file under ``root`` (path relative to it -> contents)."""
    out = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = f.read()
    return out


def test_a_run_another_process_is_running_is_refused_and_left_as_it_is(finished, tmp_path):
    """Two processes writing one folder would overwrite each other's cycles: the second is
    refused (its own exit status, so reproduce.py passes over the run) and writes nothing."""
    done = finished("finetune")
    root = str(tmp_path / os.path.basename(done.paths.root))
    shutil.copytree(done.paths.root, root)
    os.remove(os.path.join(root, "state.json"))  # unlocked, it would train cycle 1 again
    config = dataclasses.replace(done.config, results_dir=str(tmp_path))
    before = _tree(root)
    with (held_or_refused(os.path.join(root, "run.lock")),  # what the other process holds
          pytest.raises(RunInUseError, match="another process is running this run") as e):
        run(config)
    assert e.value.exit_code == 4 and root in str(e.value)
    assert _tree(root) == {**before, "run.lock": b""}


def test_a_finished_run_started_again_leaves_its_files_as_they_are(finished, tmp_path):
    """Nothing runs, so nothing is rewritten: not the log's total time, nor any file."""
    done = finished("finetune")
    root = str(tmp_path / os.path.basename(done.paths.root))
    shutil.copytree(done.paths.root, root)
    config = dataclasses.replace(done.config, results_dir=str(tmp_path))
    names = ("Training_logs.txt", "summary.json", "metrics.csv", "state.json")

    def contents() -> dict[str, bytes]:
        out = {}
        for name in names:
            with open(os.path.join(root, name), "rb") as f:
                out[name] = f.read()
        return out

    before = contents()
    assert b"Total time: " in before["Training_logs.txt"]
    summary = run(config)
    assert contents() == before
    with open(os.path.join(root, "summary.json")) as f:
        assert summary["mean"] == json.load(f)["mean"]

    # Killed after its last cycle's state was saved, before the footer: the footer is written.
    log_path = os.path.join(root, "Training_logs.txt")
    text = before["Training_logs.txt"].decode()
    with open(log_path, "w") as f:
        f.write(text[:text.index("Average: (")])
    run(config)
    with open(log_path) as f:
        after = f.read()
    assert after.endswith("Done.\n") and after.count("Average: (") == 1
    assert "Total time" not in after


def test_any_folder_of_period_files_is_a_dataset(data_dir, tmp_path):
    """A shop's own periods (here a copy of the sample's) run under the folder's name."""
    shutil.copytree(os.path.join(data_dir, "sample"), tmp_path / "data" / "SHOP")
    summary = run(_config(str(tmp_path / "data"), tmp_path / "results", dataset="SHOP",
                          finetune=True, cycles=1))
    reference = run(_config(data_dir, tmp_path / "reference", finetune=True, cycles=1))
    assert summary["mean"] == reference["mean"]
    assert os.path.isfile(tmp_path / "results" / "SHOP-ADER" / "metrics.csv")


def test_a_run_started_under_other_dataset_defaults_resumes_with_its_values(data_dir, tmp_path):
    """A YOOCHOOSE run started with the general defaults (0.8, 256) resumes with them."""
    shutil.copytree(os.path.join(data_dir, "sample"), tmp_path / "data" / "YOOCHOOSE")
    tiny = {k: v for k, v in TINY.items() if k != "batch_size"}
    common = dict(data_dir=str(tmp_path / "data"), results_dir=str(tmp_path / "r"),
                  dataset="YOOCHOOSE", finetune=True, **tiny)
    run(make_config(cycles=1, lambda_=0.8, batch_size=256, **common))
    runner = ContinualRunner(make_config(**common))  # now defaults to the paper's 1.0 and 512
    assert (runner.config.lambda_, runner.config.batch_size) == (0.8, 256)
    assert runner.run()["cycles_completed"] == 2
    fresh = ContinualRunner(make_config(**{**common, "results_dir": str(tmp_path / "new")}))
    assert (fresh.config.lambda_, fresh.config.batch_size) == (1.0, 512)
