"""The cycle loop end to end on a tiny sample: methods, outputs, resume, damaged state."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ader_tf.config import Config
from ader_tf.continual.artifacts import RunStateError
from ader_tf.continual.exemplar_store import ExemplarFileError
from ader_tf.continual.runner import ContinualRunner, TrainingDivergedError, run
from ader_tf.data.sample import SampleConfig, write_sample_dataset
from tests.conftest import REPO_ROOT

TINY_SAMPLE = SampleConfig(num_periods=3, num_topics=6, always_on_topics=2, items_per_topic=8,
                           sessions_per_period=80)
TINY = dict(hidden_units=8, num_epochs=2, stop=1, batch_size=64, test_batch=64, maxlen=6,
            exemplar_size=60, ewc_sample_num=20, export_k=5, export_saved_models=False,
            progress=False)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_sample_dataset(str(folder / "sample"), TINY_SAMPLE)
    return str(folder)


def _config(data_dir, results_dir, **kwargs) -> Config:
    return Config(data_dir=data_dir, results_dir=str(results_dir), **{**TINY, **kwargs})


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


PLAIN = ("ce_loss",)


@pytest.mark.parametrize(
    "flags, terms, keeps_exemplars",
    [
        ({}, ("ce_loss", "kd_loss"), True),
        ({"disable_distillation": True}, ("ce_loss", "er_loss"), True),
        ({"ewc": True}, ("ce_loss", "ewc_loss"), True),
        ({"finetune": True}, PLAIN, False),
        ({"dropout": True}, PLAIN, False),
        ({"joint": True}, PLAIN, False),
        ({"method": "lwf"}, ("ce_loss", "kd_loss"), False),
        ({"method": "agem"}, ("ce_loss",), True),
        ({"method": "mas"}, ("ce_loss", "mas_loss"), False),
        ({"method": "derpp", "derpp_top_k": 5}, ("ce_loss", "der_loss", "er_loss"), True),
        ({"method": "er", "selection": "reservoir"}, ("ce_loss", "er_loss"), True),
        pytest.param({"method": "sacaisr"}, ("ce_loss", "nce_loss"), False, id="sacaisr"),
    ],
)
def test_each_method_end_to_end(data_dir, tmp_path, flags, terms, keeps_exemplars):
    export = not flags  # one method exports its SavedModels; the export has its own tests
    config = _config(data_dir, tmp_path, export_saved_models=export, **flags)
    runner = ContinualRunner(config)
    summary = runner.run()
    assert summary["cycles_completed"] == 2
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
    for name in ("summary.json", "metrics.png", "Training_logs.txt", "config.json"):
        assert os.path.isfile(os.path.join(root, name))
    with open(os.path.join(root, "Training_logs.txt")) as f:
        log_text = f.read()
    assert log_text.count("Period ") == 2 and "Average: (MRR@20: " in log_text


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
    teacher = runner._teacher(1, int(last["best_epoch"]), int(last["max_item"]))

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
        runner._teacher(1, int(last["best_epoch"]), int(last["max_item"]))


def test_exemplar_quota_is_respected(data_dir, tmp_path):
    runner = ContinualRunner(_config(data_dir, tmp_path, exemplar_size=25, cycles=2))
    runner.run()
    assert 0 < len(runner.exemplars) <= 25


def test_mismatched_run_and_damaged_exemplars_are_reported(data_dir, tmp_path):
    run(_config(data_dir, tmp_path, cycles=1))
    with pytest.raises(RunStateError, match="another config"):
        run(_config(data_dir, tmp_path, cycles=2, lr=1e-3))
    npz = tmp_path / "sample-ADER" / "exemplars" / "cycle_1.npz"
    blob = bytearray(npz.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    npz.write_bytes(bytes(blob))
    with pytest.raises(ExemplarFileError, match=str(npz.parent / "cycle_1")):
        run(_config(data_dir, tmp_path, cycles=2))


def test_non_finite_loss_stops_the_run(data_dir, tmp_path, monkeypatch):
    runner = ContinualRunner(_config(data_dir, tmp_path, cycles=1))
    runner._fresh_model(1)

    class History:
        history = {"loss": [float("nan")]}

    monkeypatch.setattr(runner.model, "fit", lambda *a, **k: History())
    with pytest.raises(TrainingDivergedError, match="not finite"):
        runner.run_cycle(1)


def _main(data_dir, results_dir, *extra):
    args = [sys.executable, "main.py", f"--data_dir={data_dir}", f"--results_dir={results_dir}",
            *(f"--{k}={v}" for k, v in TINY.items()), "--num_epochs=3", "--stop=3", *extra]
    return args


def test_resume_after_kill_gives_the_same_metrics(data_dir, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}
    reference = tmp_path / "reference"
    subprocess.run(_main(data_dir, reference), cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True, timeout=600)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(_main(data_dir, killed), cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    marker = killed / "sample-ADER" / "checkpoints" / "cycle_2"
    deadline = time.time() + 300
    while not marker.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed mid-cycle"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = (killed / "sample-ADER" / "state.json").read_text()
    assert '"cycle": 1' in state and '"cycle": 2' not in state  # killed inside cycle 2

    subprocess.run(_main(data_dir, killed), cwd=REPO_ROOT, env=env, check=True,
                   capture_output=True, timeout=600)
    ref_rows = _rows(reference / "sample-ADER" / "metrics.csv")
    res_rows = _rows(killed / "sample-ADER" / "metrics.csv")
    keys = ("cycle", "epochs_run", "best_epoch", "mrr20", "recall20", "mrr10", "recall10",
            "test_examples", "lambda", "exemplars_kept")
    assert [[r[k] for k in keys] for r in res_rows] == [[r[k] for k in keys] for r in ref_rows]
    log_text = (killed / "sample-ADER" / "Training_logs.txt").read_text()
    assert log_text.count("Period 2:") == 1 and "Resumed at cycle 2." in log_text
    assert np.isclose(float(res_rows[0]["recall20"]), float(ref_rows[0]["recall20"]))


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
        runner.exemplars = runner._load_exemplars(1, int(runner.state.cycles[0]["max_item"]))
        expected += len(runner.exemplars)
    assert len(runner._knn_memory(2)) == expected
    assert os.path.isfile(os.path.join(runner.paths.root, "exemplars", "cycle_1.npz")) == (
        with_exemplars)


def test_session_knn_resumes_to_the_same_metrics(data_dir, tmp_path):
    flags = {"model": "vsknn", "disable_distillation": True, "selection": "random"}
    straight = run(_config(data_dir, tmp_path / "a", **flags))
    run(_config(data_dir, tmp_path / "b", cycles=1, **flags))
    resumed = run(_config(data_dir, tmp_path / "b", **flags))
    assert resumed["cycles_completed"] == 2
    assert resumed["mean"] == straight["mean"]


@pytest.mark.parametrize(
    "flags",
    [
        {"method": "lwf", "model": "gru4rec"},
        {"method": "agem", "model": "stamp"},
        {"method": "mas", "model": "stmp"},
        {"method": "derpp", "derpp_top_k": 5},
        {"method": "er", "selection": "reservoir", "exemplar_size": 40},
        pytest.param({"method": "sacaisr"}, id="sacaisr"),
    ],
)
def test_methods_resume_to_the_same_metrics(data_dir, tmp_path, flags):
    """A run stopped after cycle 1 and started again ends as one that never stopped: what the
    method keeps between cycles (teacher, importance, stored scores, reservoir) is restored."""
    straight = run(_config(data_dir, tmp_path / "a", **flags))
    run(_config(data_dir, tmp_path / "b", cycles=1, **flags))
    resumed = run(_config(data_dir, tmp_path / "b", **flags))
    assert resumed["cycles_completed"] == 2
    assert resumed["mean"] == straight["mean"]
    assert _rows(tmp_path / "a" / "sample-ADER" / "metrics.csv")[1]["lambda"] == _rows(
        tmp_path / "b" / "sample-ADER" / "metrics.csv")[1]["lambda"]


def test_any_folder_of_period_files_is_a_dataset(data_dir, tmp_path):
    """A shop's own periods (here a copy of the sample's) run under the folder's name."""
    import shutil

    shutil.copytree(os.path.join(data_dir, "sample"), tmp_path / "data" / "SHOP")
    summary = run(_config(str(tmp_path / "data"), tmp_path / "results", dataset="SHOP",
                          finetune=True, cycles=1))
    reference = run(_config(data_dir, tmp_path / "reference", finetune=True, cycles=1))
    assert summary["mean"] == reference["mean"]
    assert os.path.isfile(tmp_path / "results" / "SHOP-ADER" / "metrics.csv")


def test_a_run_started_under_other_dataset_defaults_resumes_with_its_values(data_dir, tmp_path):
    """A YOOCHOOSE run started with the general defaults (0.8, 256) resumes with them."""
    import shutil

    shutil.copytree(os.path.join(data_dir, "sample"), tmp_path / "data" / "YOOCHOOSE")
    tiny = {k: v for k, v in TINY.items() if k != "batch_size"}
    common = dict(data_dir=str(tmp_path / "data"), results_dir=str(tmp_path / "r"),
                  dataset="YOOCHOOSE", finetune=True, **tiny)
    run(Config(cycles=1, lambda_=0.8, batch_size=256, **common))
    runner = ContinualRunner(Config(**common))  # now defaults to the paper's 1.0 and 512
    assert (runner.config.lambda_, runner.config.batch_size) == (0.8, 256)
    assert runner.run()["cycles_completed"] == 2
    fresh = ContinualRunner(Config(**{**common, "results_dir": str(tmp_path / "new")}))
    assert (fresh.config.lambda_, fresh.config.batch_size) == (1.0, 512)
