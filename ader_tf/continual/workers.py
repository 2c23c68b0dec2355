"""The workers of a multi-worker run: the strategy, who writes the results, and where the
others put what they must write.

Every worker runs the whole protocol on the same period files, so they agree step by step on
the collective ops (training steps) and hold the same weights. Only the chief writes under
``--results_dir``. Another worker runs with a private scratch folder as its run folder (its
checkpoints, which it restores the best epoch from, and its copies of the other outputs) and
removes it at the end. To resume, it first copies the files of the chief's last finished
cycle into that folder, so every worker starts from the same cycle; on several machines
``--results_dir`` must therefore be a folder every worker sees (a shared file system).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import tempfile
from collections.abc import Iterator

import tensorflow as tf

from ader_tf.continual.artifacts import RunState
from ader_tf.errors import AderError
from ader_tf.io_utils import one_line

# Folders of a run that a resumed worker does not need (written again, or for people only).
_NOT_COPIED = frozenset({"saved_models", "tensorboard"})


def distribution_strategy(name: str, timeout_seconds: float = 0.0) -> tf.distribute.Strategy:
    """The tf.distribute strategy for ``--distribution_strategy``.

    ``timeout_seconds`` bounds every collective op of ``multi_worker`` (0: no bound), so that
    losing a worker ends the others with a DeadlineExceeded error instead of a hang.
    """
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        options = tf.distribute.experimental.CommunicationOptions(
            timeout_seconds=timeout_seconds or None
        )
        return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)
    return tf.distribute.get_strategy()


@dataclasses.dataclass(frozen=True)
class WorkerRole:
    """Which task of the cluster this process is, and whether it writes the results."""

    task_type: str | None
    task_id: int
    is_chief: bool

    @property
    def name(self) -> str:
        return "single process" if self.task_type is None else f"{self.task_type} {self.task_id}"


def worker_role(strategy: tf.distribute.Strategy) -> WorkerRole:
    """This process's task in the strategy's cluster (TF_CONFIG); one process is the chief.

    The chief is the ``chief`` task if the cluster has one, else ``worker`` 0 (TensorFlow's
    own convention for MultiWorkerMirroredStrategy).
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return WorkerRole(None, 0, True)
    task_type, task_id = resolver.task_type, int(resolver.task_id or 0)
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0
                                     and "chief" not in cluster)
    return WorkerRole(task_type, task_id, chief)


def worker_scratch(role: WorkerRole, chief_root: str, fingerprint: str) -> str:
    """A new private run folder for a worker that is not the chief, holding the files of the
    chief's last finished cycle (none for a new run).

    Raises:
        RunStateError: the chief's state.json is damaged or belongs to another config.
    """
    # A fixed name per run and task, emptied first: a worker that was killed left its folder,
    # and starting it again removes it.
    scratch = os.path.join(tempfile.gettempdir(), f"ader-{os.path.basename(chief_root)}-"
                           f"{fingerprint}-{role.task_type}{role.task_id}")
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    state_path = os.path.join(chief_root, "state.json")
    last = RunState.load_or_new(state_path, fingerprint).last
    if last is None:
        return scratch
    cycle_file = re.compile(rf"cycle_{int(last['cycle'])}(\.|$)")
    shutil.copy2(state_path, os.path.join(scratch, "state.json"))
    for entry in os.scandir(chief_root):
        if entry.is_dir() and entry.name not in _NOT_COPIED:
            for item in os.scandir(entry.path):
                if cycle_file.match(item.name):
                    _copy(item.path, os.path.join(scratch, entry.name, item.name))
    return scratch


def _copy(source: str, dest: str) -> None:
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    if os.path.isdir(source):
        shutil.copytree(source, dest)
    else:
        shutil.copy2(source, dest)


class WorkerLostError(AderError, RuntimeError):
    """A collective op of a multi-worker run failed or timed out: another worker is gone."""

    exit_code = 3


# What a collective op raises when a peer has died or does not answer in time.
COLLECTIVE_ERRORS = (tf.errors.DeadlineExceededError, tf.errors.UnavailableError,
                     tf.errors.CancelledError, tf.errors.AbortedError)


@contextlib.contextmanager
def lost_workers_reported(role: WorkerRole) -> Iterator[None]:
    """Turns a failed collective op of a multi-worker run into a `WorkerLostError` that says
    how to resume; in a run of one process the error passes unchanged."""
    try:
        yield
    except COLLECTIVE_ERRORS as e:
        if role.task_type is None:
            raise
        raise WorkerLostError(
            f"{role.name}: lost the other workers ({type(e).__name__}: "
            f"{one_line(str(e).split(chr(10), 1)[0])}); start every worker again with the "
            "same command to resume at the first unfinished cycle"
        ) from e


def agree_on(strategy: tf.distribute.Strategy, value: int) -> bool:
    """Whether every replica of ``strategy`` holds the same ``value`` (one all-reduce).

    All-reduce has SUM and MEAN only: the values are equal exactly when their variance is 0,
    i.e. n * sum(v^2) == sum(v)^2.
    """
    replicas = strategy.num_replicas_in_sync
    if replicas == 1:
        return True

    def sums() -> tf.Tensor:
        local = tf.constant([value, value * value], tf.int64)
        context = tf.distribute.get_replica_context()
        return context.all_reduce(tf.distribute.ReduceOp.SUM, local)

    total, squares = strategy.experimental_local_results(strategy.run(sums))[0].numpy()
    return int(replicas * squares) == int(total * total)
