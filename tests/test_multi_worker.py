"""Two local worker processes under MultiWorkerMirroredStrategy run the tiny sample's two
cycles like one process, write only through the chief, and resume after both are killed.

One module fixture runs everything once (processes on free loopback ports, see
`ader_tf.launch`): a single-process run, and beside it two workers that are killed (SIGKILL)
as soon as the chief has finished cycle 1 and then started again with the same command.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ader_tf.launch import free_ports, tf_configs
from tests.helpers import assert_runs_agree_up_to_float_order, first_epochs

# One xdist worker runs this module's tests: they share one set of worker runs.
pytestmark = pytest.mark.xdist_group("multi_worker")

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Dropout off: its masks depend on which replica a row lands on.
_FLAGS = ["--hidden_units=8", "--num_epochs=1", "--stop=1", "--batch_size=64", "--test_batch=64",
          "--maxlen=6", "--exemplar_size=60", "--noexport_saved_models", "--noprogress",
          "--cycles=2", "--dropout_rate=0", "--length_groups=1"]
_TIMEOUT = 600
_PROGRESS_BAR = re.compile(r"\| *\d+/\d+ \[")  # tqdm's "| 12/47 [00:00<..."


def _read(path: str) -> str:
    with open(path) as f:
        return f.read()


def _env(tmp: str) -> dict[str, str]:
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TQDM_DISABLE="1", TMPDIR=tmp)


def _start(args: list[str], log: str, env: dict[str, str]) -> subprocess.Popen:
    with open(log, "a") as out:
        return subprocess.Popen([sys.executable, "main.py", *args], cwd=_REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)


def _start_workers(args: list[str], logs: list[str], env: dict[str, str]) -> list:
    return [_start(args, log, dict(env, TF_CONFIG=config))
            for log, config in zip(logs, tf_configs(free_ports(len(logs))), strict=True)]


def _wait(procs: list[subprocess.Popen], logs: list[str]) -> None:
    deadline = time.time() + _TIMEOUT
    for proc, log in zip(procs, logs, strict=True):
        try:
            code = proc.wait(timeout=max(1.0, deadline - time.time()))
        except subprocess.TimeoutExpired:
            proc.kill()
            code = "timeout"
        assert code == 0, f"{log} ended with {code}:\n" + _read(log)[-3000:]


def _cycle_done(state_path: str, cycle: int) -> bool:
    try:
        with open(state_path) as f:
            return len(json.load(f)["cycles"]) >= cycle
    except (OSError, ValueError):
        return False


@pytest.fixture(scope="module")
def runs(tiny_data_dir, tmp_path_factory) -> dict:
    """Runs the single process and the killed-and-resumed pair of workers; their folders."""
    tmp = tmp_path_factory.mktemp("multi_worker")
    scratch = str(tmp / "worker_tmp")
    os.makedirs(scratch)
    env = _env(scratch)
    single_dir, multi_dir = str(tmp / "single"), str(tmp / "multi")
    data = [f"--data_dir={tiny_data_dir}"]
    single_log = str(tmp / "single.log")
    logs = [str(tmp / f"worker{i}.log") for i in range(2)]
    single = _start([*data, f"--results_dir={single_dir}", *_FLAGS], single_log, env)
    worker_args = [*data, f"--results_dir={multi_dir}", "--distribution_strategy=multi_worker",
                   "--collective_timeout=120", *_FLAGS]
    state = os.path.join(multi_dir, "sample-ADER", "state.json")
    procs = _start_workers(worker_args, logs, env)
    try:
        deadline = time.time() + _TIMEOUT
        while not _cycle_done(state, 1) and time.time() < deadline:
            assert all(p.poll() is None for p in procs), _read(logs[0])[-3000:]
            time.sleep(0.2)
        for p in procs:  # both workers killed in cycle 2
            p.send_signal(signal.SIGKILL)
            p.wait()
        killed_after = len(json.loads(_read(state))["cycles"])
        procs = _start_workers(worker_args, logs, env)
        _wait(procs, logs)
        _wait([single], [single_log])
    finally:
        for p in [*procs, single]:
            if p.poll() is None:
                p.kill()
    return {"single": os.path.join(single_dir, "sample-ADER"), "single_log": single_log,
            "multi_root": multi_dir, "multi": os.path.join(multi_dir, "sample-ADER"),
            "logs": logs, "scratch": scratch, "killed_after": killed_after}


@pytest.mark.slow
def test_two_workers_train_like_one_process(runs) -> None:
    single, chief, other = (first_epochs(_read(p)) for p in (runs["single_log"], *runs["logs"]))
    assert set(single) == set(chief) == set(other) == {1, 2}
    for cycle in (1, 2):
        examples, loss = single[cycle]
        assert chief[cycle][0] == other[cycle][0] == examples  # each row once, over both
        # Same weights and rows; only float32 summation order differs (two partial sums).
        assert chief[cycle][1] == pytest.approx(loss, rel=1e-5), cycle
    assert_runs_agree_up_to_float_order(runs["single"], runs["multi"], (1, 2))


@pytest.mark.slow
def test_only_the_chief_writes(runs) -> None:
    assert os.listdir(runs["multi_root"]) == ["sample-ADER"]
    assert sorted(os.listdir(runs["multi"])) == sorted(os.listdir(runs["single"]))
    for log in (runs["single_log"], *runs["logs"]):  # --noprogress: no progress bar at all
        assert not _PROGRESS_BAR.search(_read(log)), log
    # The other worker removed its scratch folder (TensorFlow's autograph files stay there).
    assert [n for n in os.listdir(runs["scratch"]) if n.startswith("ader-")] == []


@pytest.mark.slow
def test_killed_workers_resume_at_the_first_unfinished_cycle(runs) -> None:
    assert runs["killed_after"] == 1
    for log in runs["logs"]:
        text = _read(log)
        assert "resuming after cycle 1" in text, text[-2000:]
    assert "Resumed at cycle 2." in _read(os.path.join(runs["multi"], "Training_logs.txt"))


@pytest.mark.slow
def test_losing_a_worker_ends_the_chief_with_a_message(tiny_data_dir, tmp_path) -> None:
    """Worker 1 killed mid-training: the chief stops with exit status 3 and says what to do,
    instead of waiting for it forever."""
    env = _env(str(tmp_path))
    logs = [str(tmp_path / f"worker{i}.log") for i in range(2)]
    args = [f"--data_dir={tiny_data_dir}", f"--results_dir={tmp_path / 'out'}",
            "--distribution_strategy=multi_worker", "--collective_timeout=60",
            *[f for f in _FLAGS if not f.startswith("--num_epochs")], "--num_epochs=3"]
    chief, other = _start_workers(args, logs, env)
    try:
        deadline = time.time() + _TIMEOUT
        while "cycle 1 epoch 1:" not in _read(logs[0]) and time.time() < deadline:
            assert chief.poll() is None, _read(logs[0])[-3000:]
            time.sleep(0.2)
        other.send_signal(signal.SIGKILL)
        other.wait()
        code = chief.wait(timeout=_TIMEOUT)
    finally:
        for p in (chief, other):
            if p.poll() is None:
                p.kill()
    text = _read(logs[0])
    assert code == 3, text[-3000:]
    assert "error: worker 0: lost the other workers" in text
    assert "start every worker again with the same command" in text
