"""Damaged run state is named: one line with the file and what to do, never a traceback.

Covers the checksummed array files (exemplars, EWC/MAS importance, DER++ scores), state.json
and checkpoints, from the file readers up to `main.py`'s exit status.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import RunState, RunStateError
from ader_tf.continual.importance import ImportanceState
from ader_tf.continual.methods import CycleContext, make_method
from ader_tf.continual.runner import run
from ader_tf.io_utils import DamagedFileError, load_checked_npz, save_checked_npz
from tests.conftest import REPO_ROOT
from tests.helpers import TINY, tiny_config

# One xdist worker runs this module's tests: they share one finished run.
pytestmark = pytest.mark.xdist_group("damaged_state")

# === Ways to damage a file ===


def flip_byte(path: Path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xff\xfe not json \x80")


def wrong_json(path: Path) -> None:
    path.write_text('["valid JSON", "of the wrong shape"]')


# === Checksummed arrays ===


def test_checked_npz_round_trip_and_sidecar(tmp_path):
    arrays = {"a": np.arange(6).reshape(2, 3), "b": np.ones(4, np.float32)}
    save_checked_npz(tmp_path / "x.npz", arrays, {"format": "test/1"})
    loaded, record = load_checked_npz(tmp_path / "x.npz")
    assert sorted(loaded) == ["a", "b"] and record["format"] == "test/1"
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "x.npz"]


@pytest.mark.parametrize(
    "damage, target, problem",
    [
        (flip_byte, "x.npz", "checksum mismatch"),
        (truncate, "x.npz", "checksum mismatch"),
        (garbage, "x.json", "unreadable metadata"),
        (wrong_json, "x.json", "metadata is not a JSON object"),
        (os.remove, "x.json", "file is missing"),
        (os.remove, "x.npz", "file is missing"),
    ],
)
def test_checked_npz_damage_is_named(tmp_path, damage, target, problem):
    save_checked_npz(tmp_path / "x.npz", {"a": np.arange(1000)}, {})
    damage(tmp_path / target)
    with pytest.raises(DamagedFileError, match=problem) as raised:
        load_checked_npz(tmp_path / "x.npz")
    assert raised.value.path == str(tmp_path / target)
    assert "\n" not in str(raised.value)


@pytest.mark.parametrize("damage", [flip_byte, truncate, garbage])
def test_a_file_without_sidecar_is_read_as_it_is_and_damage_still_named(tmp_path, damage):
    np.savez(tmp_path / "old.npz", a=np.arange(1000))  # written before sidecars existed
    loaded, record = load_checked_npz(tmp_path / "old.npz", sidecar_required=False)
    assert record is None and loaded["a"].sum() == 499500
    damage(tmp_path / "old.npz")
    with pytest.raises(DamagedFileError, match="unreadable npz") as raised:
        load_checked_npz(tmp_path / "old.npz", sidecar_required=False)
    assert raised.value.path == str(tmp_path / "old.npz")
    assert "\n" not in str(raised.value)


# === Importance (EWC, MAS) and DER++ files ===


def _importance() -> ImportanceState:
    return ImportanceState(
        importance=(tf.constant([[0.5, 1.0]]), tf.constant([2.0])),
        anchor=(tf.constant([[1.0, -1.0]]), tf.constant([3.0])),
        num_examples=7,
    )


class _Model:
    trainable_variables = (tf.Variable([[0.0, 0.0]]), tf.Variable([0.0]))


def test_importance_is_checksummed_and_old_files_still_load(tmp_path):
    path = str(tmp_path / "cycle_1.npz")
    _importance().save(path)
    assert json.loads((tmp_path / "cycle_1.json").read_text())["format"] == "ader_tf.importance/1"
    loaded = ImportanceState.load(path, _Model())
    assert loaded.num_examples == 7
    np.testing.assert_array_equal(loaded.anchor[0], [[1.0, -1.0]])

    # The format EWC wrote before checksums (no sidecar): a run started then still resumes.
    old = tmp_path / "old.npz"
    with open(old, "wb") as f:
        np.savez(f, num_examples=7, fisher_0=[[0.5, 1.0]], fisher_1=[2.0],
                 previous_0=[[1.0, -1.0]], previous_1=[3.0])
    assert ImportanceState.load(str(old), _Model()).num_examples == 7


@pytest.mark.parametrize(
    "damage, target, problem",
    [
        (flip_byte, "cycle_1.npz", "checksum mismatch"),
        (truncate, "cycle_1.npz", "checksum mismatch"),
        (wrong_json, "cycle_1.json", "metadata is not a JSON object"),
    ],
)
def test_damaged_importance_is_named(tmp_path, damage, target, problem):
    path = str(tmp_path / "cycle_1.npz")
    _importance().save(path)
    damage(tmp_path / target)
    with pytest.raises(DamagedFileError, match=problem) as raised:
        ImportanceState.load(path)
    assert raised.value.path == str(tmp_path / target)


def test_importance_of_another_model_is_named(tmp_path):
    path = str(tmp_path / "cycle_1.npz")
    _importance().save(path)

    class Wider:
        trainable_variables = (tf.Variable([[0.0, 0.0, 0.0]]), tf.Variable([0.0]))

    with pytest.raises(DamagedFileError, match=f"{path}: importance is for variable shapes"):
        ImportanceState.load(path, Wider())
    np.savez(tmp_path / "other.npz", weights=[1.0])
    with pytest.raises(DamagedFileError, match="not an importance state"):
        ImportanceState.load(str(tmp_path / "other.npz"))


@pytest.mark.parametrize("damage, target", [(flip_byte, "npz"), (garbage, "json")])
def test_damaged_derpp_scores_are_named(tmp_path, damage, target):
    method = make_method(tiny_config("unused", tmp_path, method="derpp", derpp_top_k=2))
    stored = {"top_items": np.ones((300, 2), np.int32),
              "top_scores": np.zeros((300, 2), np.float32), "num_scored": np.ones(300, np.int32)}
    path = tmp_path / "derpp" / "cycle_1.npz"
    save_checked_npz(path, stored, {"format": "ader_tf.derpp_scores/1"})
    context = CycleContext(
        cycle=1, config=method.config, model=None, data=None, previous=None,
        state_path=lambda cycle, name: str(tmp_path / name / f"cycle_{cycle}.npz"),
    )
    method.restore(context)
    assert len(method.stored["top_items"]) == 300
    damage(path.with_suffix(f".{target}"))
    with pytest.raises(DamagedFileError, match=str(path.with_suffix(f".{target}"))):
        method.restore(context)


# === state.json ===


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x00\xff\xfe\x80", "not valid JSON"),
        (b'{"fingerprint": "abc", "cycles": [{"cycle": 1, ', "not valid JSON"),
        (b'["a", "list"]', "not a run state"),
        (b'{"fingerprint": "abc", "cycles": [{"cycle": 1}]}', "cycle record 1 lacks"),
        (b'{"fingerprint": "abc", "cycles": [7]}', "cycle record 1 is not a JSON object"),
    ],
)
def test_damaged_state_json_is_named(tmp_path, content, problem):
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(RunStateError) as raised:
        RunState.load_or_new(str(path), "abc")
    message = str(raised.value)
    assert message.startswith(f"{path}: ") and problem in message
    assert message.endswith(f"delete {tmp_path} to start the run again")
    assert "\n" not in message


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x00\xff\xfe\x80", "not valid JSON"),
        (b'["a", "list"]', "not a run state"),
        (b'{"fingerprint": "abc", "cycles": [{"cycle": 1}]}', "cycle record 1 lacks"),
    ],
)
def test_another_runs_damaged_state_is_named_when_read(tmp_path, content, problem):
    """Readers of another run's folder (a warm start, a tuning study) get the same checks."""
    (tmp_path / "state.json").write_bytes(content)
    with pytest.raises(RunStateError) as raised:
        RunState.finished_cycles(str(tmp_path))
    message = str(raised.value)
    assert str(tmp_path / "state.json") in message and problem in message
    assert "\n" not in message


def test_another_runs_cycles_are_read_whatever_its_fingerprint(tmp_path):
    assert RunState.finished_cycles(str(tmp_path)) == []
    state = RunState("some-other-config")
    row = {"cycle": 1, "best_epoch": 3, "max_item": 9, "mrr20": 0.1, "recall20": 0.2,
           "mrr10": 0.1, "recall10": 0.2, "train_seconds": 1.0, "selection_seconds": 0.0,
           "test_seconds": 0.1}
    state.cycles.append(row)
    state.save(str(tmp_path / "state.json"))
    assert RunState.finished_cycles(str(tmp_path)) == [row]


# === A whole run resumed from damaged files ===


@pytest.fixture(scope="module")
def ewc_after_cycle_1(tiny_data_dir, tmp_path_factory):
    """The folder of an EWC run stopped after cycle 1 (checkpoint, exemplars, Fisher)."""
    results = tmp_path_factory.mktemp("ewc")
    run(tiny_config(tiny_data_dir, results, method="ewc", cycles=1))
    return str(results / "sample-ADER")


def _checkpoint_file(suffix: str):
    def find(root: Path) -> Path:
        return next((root / "checkpoints" / "cycle_1").glob(f"epoch_*/ckpt.{suffix}"))

    return find


DAMAGES = {
    "state.json garbage": (lambda root: root / "state.json", garbage, "not valid JSON"),
    "state.json truncated": (lambda root: root / "state.json", truncate, "not valid JSON"),
    "state.json wrong JSON": (lambda root: root / "state.json", wrong_json, "not a run state"),
    "ewc npz flipped": (lambda root: root / "ewc" / "cycle_1.npz", flip_byte, "checksum"),
    "ewc npz truncated": (lambda root: root / "ewc" / "cycle_1.npz", truncate, "checksum"),
    "ewc json wrong": (lambda root: root / "ewc" / "cycle_1.json", wrong_json, "JSON object"),
    "exemplars truncated": (lambda root: root / "exemplars" / "cycle_1.npz", truncate,
                            "checksum"),
    "checkpoint data truncated": (_checkpoint_file("data-00000-of-00001"), truncate,
                                  "checkpoint is damaged"),
    "checkpoint index garbage": (_checkpoint_file("index"), garbage, "checkpoint is damaged"),
}


@pytest.mark.parametrize("case", list(DAMAGES))
def test_resume_from_a_damaged_file_names_it(ewc_after_cycle_1, tiny_data_dir, tmp_path, case):
    where, damage, problem = DAMAGES[case]
    root = tmp_path / "sample-ADER"
    shutil.copytree(ewc_after_cycle_1, root)
    damaged = where(root)
    damage(damaged)
    with pytest.raises(RunStateError) as raised:
        run(tiny_config(tiny_data_dir, tmp_path, method="ewc"))
    message = str(raised.value)
    named = str(damaged).removesuffix(".index").removesuffix(".data-00000-of-00001")
    assert message.startswith(named) and problem in message, message
    assert message.endswith(f"delete {root} to start the run again"), message
    assert "\n" not in message


def _main(tiny_data_dir: str, results_dir: Path) -> subprocess.CompletedProcess:
    flags = [f"--{k}={v}" for k, v in TINY.items()]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "main.py", f"--data_dir={tiny_data_dir}",
         f"--results_dir={results_dir}", "--ewc", *flags],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("case", ["state.json wrong JSON", "ewc npz truncated"])
def test_main_prints_one_line_and_exits_2(ewc_after_cycle_1, tiny_data_dir, tmp_path, case):
    where, damage, problem = DAMAGES[case]
    root = tmp_path / "sample-ADER"
    shutil.copytree(ewc_after_cycle_1, root)
    damage(where(root))
    proc = _main(tiny_data_dir, tmp_path)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and str(where(root)) in errors[0] and problem in errors[0]
    assert errors[0].endswith(f"delete {root} to start the run again")
    # Besides it, only log records: the run's ("HH:MM:SS INFO ...") and TensorFlow's native
    # start-up lines, which its C++ logging prints whatever TF_CPP_MIN_LOG_LEVEL says.
    others = [line for line in proc.stderr.splitlines()
              if not (line.startswith("error: ") or re.match(r"\d\d:\d\d:\d\d INFO ", line)
                      or re.match(r"[IWE]\d{4} ", line) or line.startswith("WARNING: All log"))]
    assert others == []
