"""Atomic writes leave either the old file or the new one, and what a killed one leaves is
recognised and removed without touching finished files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ader_tf.io_utils import (
    LockHeldError,
    atomic_path,
    file_lock,
    held_or_refused,
    is_unfinished_write,
    remove_unfinished_writes,
    write_text_atomic,
)


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "metrics.csv"
    write_text_atomic(str(path), "old\n")
    with pytest.raises(RuntimeError), atomic_path(str(path)) as tmp:
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_the_temporary_of_a_write_in_progress_is_an_unfinished_write(tmp_path):
    with atomic_path(str(tmp_path / "Training_logs.txt")) as tmp:
        assert is_unfinished_write(os.path.basename(tmp))
        assert [p.name for p in tmp_path.iterdir()] == [os.path.basename(tmp)]


@pytest.mark.parametrize("name, unfinished", [
    (".tmp-Training_logs.txt-62i9daj8", True),  # atomic_path
    (".tmp-epoch_3", True),  # a checkpoint folder being written
    (".cycle_2.tmp-k3j2", True),  # a SavedModel being staged
    (".cycle_2.old-x1", True),  # the SavedModel it replaces, moved aside
    ("Training_logs.txt", False),
    ("epoch_3", False),
    ("cycle_2.tmp-k3j2", False),  # not hidden: not a name our writes use
    (".hidden", False),
    ("notes.tmp", False),
])
def test_unfinished_write_names(name, unfinished):
    assert is_unfinished_write(name) == unfinished


def test_remove_unfinished_writes_takes_only_the_temporaries(tmp_path):
    kept = ["state.json", "checkpoints/cycle_1/epoch_2/ckpt.index", "saved_models/cycle_1/x.pb"]
    left = [".tmp-state.json-abc", "checkpoints/cycle_2/.tmp-epoch_1/ckpt.index",
            "saved_models/.cycle_2.tmp-q/saved_model.pb", "exemplars/.tmp-cycle_2.json-z"]
    for name in kept + left:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)

    removed = remove_unfinished_writes(str(tmp_path))

    assert removed == sorted(str(tmp_path / name) for name in [
        ".tmp-state.json-abc", "checkpoints/cycle_2/.tmp-epoch_1", "saved_models/.cycle_2.tmp-q",
        "exemplars/.tmp-cycle_2.json-z"])
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()
                  ) == sorted(kept)
    assert remove_unfinished_writes(str(tmp_path)) == []


def test_file_lock_keeps_other_processes_out_until_released(tmp_path):
    path = str(tmp_path / "sub" / "run.lock")  # its folder is made
    try_lock = ("import fcntl, sys; f = open(sys.argv[1], 'a')\n"
                "try:\n    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
                "except OSError:\n    sys.exit(3)")

    def other_process_locks() -> bool:
        return subprocess.run([sys.executable, "-c", try_lock, path]).returncode == 0

    with file_lock(path):
        assert not other_process_locks()
    assert other_process_locks()


def test_a_held_lock_refuses_a_second_holder_in_this_process_and_in_another(tmp_path):
    path = str(tmp_path / "run.lock")
    hold = ("import fcntl, sys, time; f = open(sys.argv[1], 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX); print('held', flush=True); time.sleep(60)")
    with (held_or_refused(path),
          pytest.raises(LockHeldError, match="run.lock: held by another process"),
          held_or_refused(path)):
        pass
    with held_or_refused(path):  # released at the end of the block
        pass

    holder = subprocess.Popen([sys.executable, "-c", hold, path], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(LockHeldError), held_or_refused(path):
            pass
    finally:
        holder.kill()
        holder.wait()
    with held_or_refused(path):  # a killed holder's lock is released by the system
        pass
