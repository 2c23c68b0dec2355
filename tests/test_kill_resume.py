"""A run killed (SIGKILL) in any phase and started again ends as a run that never stopped.

Each kill runs in a child process (a small script written to tmp_path) that builds the Config,
kills itself at a chosen (cycle, phase) through `ContinualRunner(on_phase=...)` and is then
resumed here; the resumed run's metrics.csv must equal that of one uninterrupted run per
method. Kills in cycle 2 start from a copy of the uninterrupted run's folder as cycle 1 left
it, so each child only redoes part of cycle 2. Cycle 2 brings new items, so its kills are
kills of a cycle whose item tables grew.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest

from ader_tf.continual.runner import ContinualRunner, run
from ader_tf.io_utils import is_unfinished_write
from tests.conftest import REPO_ROOT
from tests.helpers import TINY, metrics_rows, results, tiny_config

# One xdist worker runs this module's tests: they share each method's uninterrupted run.
pytestmark = pytest.mark.xdist_group("kill_resume")

CHILD = '''
import glob, json, os, signal, sys, threading
sys.path.insert(0, {repo!r})
from ader_tf import io_utils
from ader_tf.plugins import make_config
from ader_tf.continual.runner import ContinualRunner

kwargs, cycle, phase = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]


def kill():
    os.kill(os.getpid(), signal.SIGKILL)


def kill_inside_export(root):
    # Watches the SavedModel staging folder and kills once the export has written into it.
    pattern = os.path.join(root, "saved_models", f".cycle_{{cycle}}.tmp-*", "*")
    while not glob.glob(pattern):
        threading.Event().wait(0.001)
    kill()


write_bytes = io_utils.write_bytes_atomic


def write_then_maybe_kill(path, data):
    # Kills between the exemplar npz and its json: the npz is in place, the json is not.
    if armed and str(path).endswith(os.path.join("exemplars", f"cycle_{{cycle}}.json")):
        kill()
    write_bytes(path, data)


armed = False
io_utils.write_bytes_atomic = write_then_maybe_kill


def on_phase(at_cycle, at_phase):
    global armed
    if at_cycle != cycle:
        return
    if phase == "exemplars_written" and at_phase == "selection":
        armed = True
    elif phase == "export_running" and at_phase == "export":
        root = runner.paths.root
        threading.Thread(target=kill_inside_export, args=(root,), daemon=True).start()
    elif at_phase == phase:
        kill()


runner = ContinualRunner(make_config(**kwargs), on_phase=on_phase)
runner.run()
'''

# Where each method is killed: (cycle, phase). "exemplars_written" kills between the exemplar
# npz and json writes, "export_running" while the SavedModel is being written; the other
# names are `ContinualRunner` phases. ADER goes through every phase; EWC through those where
# it keeps more (its Fisher file comes after the exemplars: "exemplars_saved" kills between
# them), Joint through those it has (no exemplars). Selection and export are the same code for
# every method, so they are not repeated: each kill point costs a process start and a trace.
KILLS = {
    "ader": [(1, "training"), (2, "selection"), (2, "exemplars_written"),
             (2, "export_running"), (2, "outputs_written")],
    "ewc": [(2, "training"), (2, "exemplars_written"), (2, "exemplars_saved"),
            (2, "outputs_written")],
    "joint": [(2, "training"), (2, "export_running"), (2, "outputs_written")],
}


@pytest.fixture(scope="module")
def uninterrupted(tiny_data_dir, tmp_path_factory):
    """method -> (run folder of an uninterrupted run, copy of that folder after cycle 1)."""
    made = {}

    def get(method: str) -> tuple[str, str]:
        if method not in made:
            base = tmp_path_factory.mktemp(f"uninterrupted-{method}")
            runner = None
            after_cycle_1 = str(base / "after_cycle_1")

            def snapshot(cycle: int, phase: str) -> None:
                if cycle == 2 and not os.path.exists(after_cycle_1):
                    shutil.copytree(runner.paths.root, after_cycle_1)

            runner = ContinualRunner(tiny_config(tiny_data_dir, base, method=method),
                                     on_phase=snapshot)
            runner.run()
            made[method] = (runner.paths.root, after_cycle_1)
        return made[method]

    return get


def _kill_at(script: str, kwargs: dict, cycle: int, phase: str) -> None:
    """Runs the child until it kills itself at (cycle, phase)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1"}
    proc = subprocess.run([sys.executable, script, json.dumps(kwargs), str(cycle), phase],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, (
        f"the child was not killed at cycle {cycle} {phase}: exit {proc.returncode}\n"
        f"{proc.stderr[-3000:]}")


def _check_killed_where_meant(root: str, cycle: int, phase: str) -> None:
    """The folder shows the kill happened inside the phase it names."""
    done = []
    if os.path.exists(os.path.join(root, "state.json")):
        with open(os.path.join(root, "state.json")) as f:
            done = [row["cycle"] for row in json.load(f)["cycles"]]
    assert done == list(range(1, cycle))
    exemplars = os.path.join(root, "exemplars", f"cycle_{cycle}")
    if phase == "exemplars_written":
        assert os.path.isfile(exemplars + ".npz") and not os.path.exists(exemplars + ".json")
    if phase == "exemplars_saved":
        assert os.path.isfile(exemplars + ".json")
        assert not os.path.exists(os.path.join(root, "ewc", f"cycle_{cycle}.npz"))
    if phase == "export_running":
        staging = [name for name in os.listdir(os.path.join(root, "saved_models"))
                   if name.startswith(f".cycle_{cycle}.tmp-")]
        assert staging and not os.path.exists(os.path.join(root, "saved_models",
                                                           f"cycle_{cycle}"))
    if phase == "outputs_written":
        assert [int(row["cycle"]) for row in metrics_rows(os.path.join(root, "metrics.csv"))
                ] == list(range(1, cycle + 1))


@pytest.mark.slow
@pytest.mark.parametrize(
    "method, cycle, phase",
    [(method, cycle, phase) for method, kills in KILLS.items() for cycle, phase in kills],
)
def test_killed_run_resumes_to_the_uninterrupted_metrics(
    uninterrupted, tiny_data_dir, tmp_path, method, cycle, phase
):
    reference, after_cycle_1 = uninterrupted(method)
    results_dir = tmp_path / "results"
    root = str(results_dir / os.path.basename(reference))
    if cycle > 1:
        shutil.copytree(after_cycle_1, root)
    kwargs = {**TINY, "data_dir": tiny_data_dir, "results_dir": str(results_dir),
              "method": method, "export_saved_models": phase == "export_running"}
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=REPO_ROOT))

    _kill_at(str(script), kwargs, cycle, phase)
    _check_killed_where_meant(root, cycle, phase)

    summary = run(tiny_config(**{**kwargs, "results_dir": results_dir}))
    assert summary["cycles_completed"] == 2
    assert results(root) == results(reference)
    # What the killed write left (a staged SavedModel after "export_running") is gone.
    assert [path for path, dirs, files in os.walk(root)
            for name in dirs + files if is_unfinished_write(name)] == []
    with open(os.path.join(root, "Training_logs.txt")) as f:
        log_text = f.read()
    assert log_text.count("Period 2:") == 1
    assert ("Resumed at cycle 2." in log_text) == (cycle == 2)
    with open(os.path.join(root, "state.json")) as f:
        items = [row["max_item"] for row in json.load(f)["cycles"]]
    assert items[0] < items[1]  # cycle 2 grew the item tables
