"""Where a run writes what, and the run state that makes it resumable.

Layout under ``<results_dir>/<DATASET>-<save_dir>/``::

    config.json            the full config of the run
    run.lock               locked while a process runs the run (a second is refused)
    state.json             completed cycles (written last in each cycle: presence = done),
                           with each cycle's probe rows where there are probes
    metrics.csv            one row per completed cycle
    summary.json           means over cycles, config, versions
    Training_logs.txt      the original's log format
    metrics.png            Recall@20 and MRR@20 per cycle
    accuracy_matrix.csv    with --probe_fraction > 0: each cycle's metrics on every
                           period's probe (accuracy_matrix.png: its Recall@20 as a heatmap)
    checkpoints/cycle_<t>/epoch_<e>/   best epoch of cycle t (model + optimizer)
    exemplars/cycle_<t>.npz|.json      exemplars kept after cycle t
    <method>/cycle_<t>.npz             what a method keeps after cycle t (EWC's and MAS's
                                       importance and weights, DER++'s stored scores)
    saved_models/cycle_<t>/            SavedModel for serving
    tensorboard/                       scalars
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import logging
import os
import shutil
from collections.abc import Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ader_tf.continual.forgetting import MATRIX_COLUMNS
from ader_tf.errors import RUN_IN_USE, AderError
from ader_tf.io_utils import (
    TEMPORARY_PREFIX,
    LockHeldError,
    held_or_refused,
    one_line,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from ader_tf.random_streams import STREAMS_VERSION

log = logging.getLogger(__name__)

METRIC_COLUMNS = (
    "cycle", "epochs_run", "best_epoch", "mrr20", "recall20", "mrr10", "recall10",
    "test_examples", "lambda", "exemplars_kept", "train_seconds", "selection_seconds",
    "test_seconds", "ndcg20", "ndcg10", "cpu_seconds", "peak_rss_gb",
)

# Columns written only by runs that have them (after METRIC_COLUMNS, which older readers
# know): the seconds a cycle spent on the probes, in runs with --probe_fraction > 0.
OPTIONAL_METRIC_COLUMNS = ("probe_seconds",)

# What a resumed run reads of each finished cycle's record (the resume point and the summary).
_STATE_KEYS = ("cycle", "best_epoch", "max_item", "mrr20", "recall20", "mrr10", "recall10",
               "train_seconds", "selection_seconds", "test_seconds")


class RunStateError(AderError, ValueError):
    """A results folder holds state that does not belong to this run or is damaged."""


class RunInUseError(RunStateError):
    """Another process is running the run in this results folder now.

    Its own exit status (4), so that a caller starting runs (reproduce.py) can pass on to the
    next run and leave this one to the process that has it.
    """

    exit_code = RUN_IN_USE


def cannot_resume(root: str) -> str:
    """What to do about a damaged file that a run needs to resume (the end of its message)."""
    return f"the run cannot resume from it; delete {root} to start the run again"


@dataclasses.dataclass(frozen=True)
class RunPaths:
    """Paths of one run's outputs."""

    root: str

    def __post_init__(self) -> None:
        os.makedirs(self.root, exist_ok=True)

    def file(self, name: str) -> str:
        return os.path.join(self.root, name)

    def cycle_checkpoint_dir(self, cycle: int) -> str:
        return os.path.join(self.root, "checkpoints", f"cycle_{cycle}")

    def exemplars(self, cycle: int) -> str:
        return os.path.join(self.root, "exemplars", f"cycle_{cycle}")

    def method_state(self, cycle: int, name: str) -> str:
        """A method's file of ``cycle`` (e.g. EWC's Fisher information: ``ewc/cycle_3.npz``)."""
        return os.path.join(self.root, name, f"cycle_{cycle}.npz")

    def saved_model(self, cycle: int) -> str:
        return os.path.join(self.root, "saved_models", f"cycle_{cycle}")

    @property
    def tensorboard(self) -> str:
        return os.path.join(self.root, "tensorboard")


@contextlib.contextmanager
def run_in_use_refused(paths: RunPaths) -> Iterator[None]:
    """Holds the run folder's ``run.lock`` while the block runs.

    Raises:
        RunInUseError: another process (or runner) holds it: two writers of one folder
            would each overwrite the other's cycles.
    """
    lock = paths.file("run.lock")
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(held_or_refused(lock))
        except LockHeldError as e:
            raise RunInUseError(
                f"{paths.root}: another process is running this run now (it holds {lock}); "
                "wait for it to finish, or give another --save_dir") from e
        yield


def check_weights_stored(layer: Any, prefix: str) -> None:
    """Raises ``AssertionError`` unless each weight of ``layer`` equals a tensor in ``prefix``.

    Compares values rather than names: a Keras 3 model's checkpoint stores the weights of its
    sublayers (the encoder's attention blocks) under the optimizer's variable list, not under
    the layer's own path, so a read that matched every object it found can still leave those
    weights at their initial values without an error. An item table that has grown since the
    checkpoint was written (more rows, see `grow_items`) must begin with a stored table.
    """
    reader = tf.train.load_checkpoint(prefix)
    stored = [(tuple(shape), name) for name, shape in reader.get_variable_to_shape_map().items()
              if name.endswith("/.ATTRIBUTES/VARIABLE_VALUE") and shape]
    cache: dict[str, np.ndarray] = {}  # each stored tensor read once

    def read(name: str) -> np.ndarray:
        if name not in cache:
            cache[name] = reader.get_tensor(name)
        return cache[name]

    missing = []
    for weight in layer.weights:
        value = keras.ops.convert_to_numpy(weight)
        if value.ndim == 0:
            continue  # counters and seeds, not learned weights
        same = [name for shape, name in stored if shape == value.shape]
        prefixes = [name for shape, name in stored if value.ndim == 2 and len(shape) == 2
                    and shape[1] == value.shape[1] and shape[0] < value.shape[0]]
        if not any(np.array_equal(read(n), value) for n in same) and not any(
            np.array_equal(read(n), value[: read(n).shape[0]]) for n in prefixes
        ):
            missing.append(weight.path)
    if missing:
        raise AssertionError(f"{len(missing)} weights differ from the checkpoint: {missing[:3]}")


def checkpoint_prefix(paths: RunPaths, cycle: int, epoch: int) -> str:
    """The prefix of the checkpoint of ``cycle``'s ``epoch``; RunStateError if it is missing."""
    prefix = os.path.join(paths.cycle_checkpoint_dir(cycle), f"epoch_{epoch}", "ckpt")
    if not os.path.isfile(prefix + ".index"):
        raise RunStateError(f"{prefix}.index: checkpoint of cycle {cycle} is missing")
    return prefix


def stored_item_count(prefix: str) -> int:
    """The item count (rows - 1) of the item table in the checkpoint at ``prefix``."""
    try:
        shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    except (tf.errors.OpError, ValueError) as e:  # a truncated or overwritten file
        problem = one_line(str(e).split("\n", 1)[0])
        raise RunStateError(f"{prefix}: checkpoint is damaged ({problem})") from e
    shape = shapes.get("model/encoder/item_embeddings/.ATTRIBUTES/VARIABLE_VALUE")
    if not shape:
        raise RunStateError(f"{prefix}: the checkpoint holds no item table")
    return int(shape[0]) - 1


class CheckpointKeeper:
    """Writes best-epoch checkpoints atomically (a temp folder renamed into place).

    ``checked`` is the layer whose every weight ``restore`` compares with the checkpoint's
    values after reading it (see ``check_weights_stored``); None skips the check.
    """

    def __init__(self, paths: RunPaths, checkpoint: Any, checked: Any = None) -> None:
        self.paths = paths
        self.checkpoint = checkpoint
        self.checked = checked

    def save(self, cycle: int, epoch: int) -> str:
        """Saves the current model and optimizer as the best epoch of ``cycle``."""
        folder = self.paths.cycle_checkpoint_dir(cycle)
        os.makedirs(folder, exist_ok=True)
        final = os.path.join(folder, f"epoch_{epoch}")
        # The prefix a resumed run recognises (and removes) as an unfinished write.
        tmp = os.path.join(folder, f"{TEMPORARY_PREFIX}epoch_{epoch}")
        shutil.rmtree(tmp, ignore_errors=True)
        self.checkpoint.write(os.path.join(tmp, "ckpt"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for name in os.listdir(folder):  # older epochs of this cycle are no longer needed
            if name != f"epoch_{epoch}":
                shutil.rmtree(os.path.join(folder, name), ignore_errors=True)
        return os.path.join(final, "ckpt")

    def prefix(self, cycle: int, epoch: int) -> str:
        return checkpoint_prefix(self.paths, cycle, epoch)

    def restore(self, cycle: int, epoch: int) -> str:
        """Restores model and optimizer from the best epoch of ``cycle``, checked value by value."""
        prefix = self.prefix(cycle, epoch)
        try:
            self.checkpoint.read(prefix).assert_existing_objects_matched()
            if self.checked is not None:
                check_weights_stored(self.checked, prefix)
        except (tf.errors.OpError, IndexError) as e:  # a truncated or overwritten file
            problem = one_line(str(e).split("\n", 1)[0])  # TF adds lines of graph context
            raise RunStateError(f"{prefix}: checkpoint is damaged ({problem})") from e
        except (ValueError, AssertionError) as e:
            raise RunStateError(f"{prefix}: checkpoint does not match this model ({e})") from e
        return prefix


@dataclasses.dataclass
class RunState:
    """What a run has finished: one record per completed cycle.

    Saved with the version of the random streams the cycles drew from: a folder from before
    named random streams is refused rather than continued with other draws.
    """

    fingerprint: str
    cycles: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    @staticmethod
    def load_or_new(path: str, fingerprint: str) -> RunState:
        """The state saved at ``path``, or a new one if there is none.

        Raises:
            RunStateError: the file is damaged or belongs to a run with another config.
        """
        if not os.path.isfile(path):
            return RunState(fingerprint)
        try:
            data = _read_checked_state(path)
        except RunStateError as e:
            raise RunStateError(f"{e}; {cannot_resume(os.path.dirname(path))}") from e
        if data.get("fingerprint") != fingerprint:
            raise RunStateError(
                f"{path}: this results folder holds a run with another config "
                f"(fingerprint {data.get('fingerprint')}, this run {fingerprint}); use another "
                "--save_dir or --results_dir, or delete the folder"
            )
        if data["cycles"] and data.get("random_streams") != STREAMS_VERSION:
            raise RunStateError(
                f"{path}: its {len(data['cycles'])} finished cycle(s) drew their random numbers "
                "from integer-salted seeds (ader_tf before named random streams), which this "
                "version cannot continue; start the run again with another --save_dir or "
                "--results_dir, or delete the folder (its results stay as they are)"
            )
        return RunState(fingerprint, list(data["cycles"]))

    @staticmethod
    def finished_cycles(folder: str) -> list[dict[str, Any]]:
        """The finished cycles' records of the run in ``folder`` (none if it has no state),
        whatever its config: for readers of another run's folder, which never resume it.

        Raises:
            RunStateError: naming the file, when it is damaged.
        """
        path = os.path.join(folder, "state.json")
        return list(_read_checked_state(path)["cycles"]) if os.path.isfile(path) else []

    def save(self, path: str) -> None:
        write_json_atomic(path, {"fingerprint": self.fingerprint,
                                 "random_streams": STREAMS_VERSION, "cycles": self.cycles})

    @property
    def last(self) -> dict[str, Any] | None:
        return self.cycles[-1] if self.cycles else None


def _read_checked_state(path: str) -> dict[str, Any]:
    """state.json's content, checked by `_state_problem`.

    Raises:
        RunStateError: naming the file and what is wrong with it.
    """
    try:
        data = read_json(path)
    except ValueError as e:
        raise RunStateError(str(e)) from e
    problem = _state_problem(data)
    if problem:
        raise RunStateError(f"{path}: {problem}")
    return data


def _state_problem(data: Any) -> str | None:
    """What makes ``data`` (read from state.json) unusable, or None."""
    if not isinstance(data, dict) or not isinstance(data.get("cycles"), list):
        return "not a run state (a JSON object with a list of cycles)"
    for number, row in enumerate(data["cycles"], start=1):
        if not isinstance(row, dict):
            return f"cycle record {number} is not a JSON object"
        missing = [k for k in _STATE_KEYS if k not in row]
        if missing:
            return f"cycle record {number} lacks {missing}"
        if row["cycle"] != number:
            return f"cycle record {number} is for cycle {row['cycle']!r}"
    return None


def write_metrics_csv(path: str, rows: list[dict[str, Any]]) -> None:
    """Writes all per-cycle rows at once (atomically).

    Rows of cycles finished before a column existed (NDCG, CPU time and peak memory, in runs
    resumed from older state) leave it empty. An optional column (`OPTIONAL_METRIC_COLUMNS`)
    is written only where some row has it, so runs without probes keep their columns.
    """
    optional = tuple(c for c in OPTIONAL_METRIC_COLUMNS if any(c in row for row in rows))
    _write_csv_atomic(path, METRIC_COLUMNS + optional, rows)


def write_accuracy_matrix_csv(path: str, rows: list[dict[str, Any]]) -> None:
    """Writes accuracy_matrix.csv (atomically): one row per (cycle, probe period)."""
    _write_csv_atomic(path, MATRIX_COLUMNS, rows)


def _write_csv_atomic(path: str, columns: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow(row)
    write_text_atomic(path, buffer.getvalue())


def as_stored(config: Any, path: str) -> Any:
    """``config``, or where it resumes a run started under other dataset defaults, that run's.

    A run whose stored config differs from ``config`` only in values ``config`` took from its
    dataset's defaults (not given on the command line) keeps the stored values.
    """
    if not config.dataset_defaults or not os.path.isfile(path):
        return config
    stored = read_json(path)
    if stored.get("fingerprint") == config.fingerprint():
        return config
    candidate = config.with_stored_defaults(stored)
    if candidate.fingerprint() != stored.get("fingerprint"):
        return config  # another run altogether: RunState says so
    log.info("resuming %s with the values it started with: %s", path, ", ".join(
        f"--{n}={getattr(candidate, n)}" for n in config.dataset_defaults))
    return candidate


def write_config(path: str, config: Any) -> None:
    """Writes the run's config.json: every field and the fingerprint that guards resume."""
    write_json_atomic(path, {**config.to_dict(), "fingerprint": config.fingerprint()})
