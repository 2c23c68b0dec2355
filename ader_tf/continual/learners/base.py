"""The learner interface: how one family of backbones is built, trained, tested and exported.

The cycle loop (`ader_tf.continual.runner`) is the same for every backbone; a learner does
what differs: the neural learner trains a `SessionRecommender` on prefix examples with
`fit`, the session-parallel learner trains GRU4Rec its own way, the kNN learner trains
nothing and only remembers sessions.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

from ader_tf.errors import AderError
from ader_tf.options import Option
from ader_tf.random_streams import RandomStreams

# A learner's declaration (name, options, checks) is read without TensorFlow, as by `--help`:
# what needs it is imported inside the functions that use it.
if TYPE_CHECKING:
    import numpy as np
    import tensorflow as tf

    from ader_tf.continual.artifacts import RunPaths, RunState
    from ader_tf.continual.reporting import RunLog
    from ader_tf.data.cycles import ContinualData, CycleData
    from ader_tf.data.examples import Examples
    from ader_tf.evaluation import Metrics

log = logging.getLogger(__name__)


class TrainingDivergedError(AderError, RuntimeError):
    """The loss or a model output (scores, losses, session vectors) became NaN or infinite.

    The message names the cycle, the phase and the last good checkpoint, which is kept.
    """

    exit_code = 1


@dataclasses.dataclass
class RunContext:
    """What the cycle loop shares with its learner, method and exemplar memory.

    Attributes:
        config: The run's `Config`.
        method: The run's `Method`.
        strategy: The tf.distribute strategy variables are created under.
        paths: Where the run writes.
        data: The run's periods, as cycles.
        state: The finished cycles (``state.last`` is the previous cycle's record).
        runlog: The original's Training_logs.txt.
        writer: The TensorBoard writer.
        on_phase: ``on_phase(cycle, phase)`` at points where a kill must leave a resumable
            folder (see `ContinualRunner`).
        exemplars: Returns the exemplars kept after the last finished cycle (or None).
    """

    config: Any
    method: Any
    strategy: tf.distribute.Strategy
    paths: RunPaths
    data: ContinualData
    state: RunState
    runlog: RunLog
    writer: Any
    on_phase: Callable[[int, str], None]
    exemplars: Callable[[], Examples | None]

    @property
    def streams(self) -> RandomStreams:
        """The run's named random streams (see `ader_tf.random_streams`)."""
        return RandomStreams(self.config.random_seed)

    def seed(self, cycle: int, purpose: str, *index: int | str) -> int:
        """A TensorFlow/Keras seed for one random choice of ``cycle``, named by its purpose."""
        return self.streams.tf_seed(purpose, cycle, *index)

    def bar_label(self, desc: str) -> str | None:
        """``desc`` as a progress bar's label, or None (no bar) under ``--noprogress``."""
        return desc if self.config.progress else None


@dataclasses.dataclass(frozen=True)
class Training:
    """How a cycle's training went: epochs run, the best (restored) one, seconds, and the best
    epoch's validation Recall@20 (None where nothing is validated)."""

    epochs_run: int
    best_epoch: int
    seconds: float
    valid_recall20: float | None = None


class Learner:
    """Builds, trains, tests and exports the models of one family of backbones.

    Class attributes:
        name: The learner's name (see `ader_tf.continual.learners.learner_name`).
        trains: Whether its model is trained (False: nothing to train, no objective).
        exports: Whether a SavedModel is exported after each cycle.
        warm_starts: Whether it can start cycle 1 from another run's checkpoint
            (`warm_start`, ``--warm_start``).
    """

    name: ClassVar[str] = ""
    trains: ClassVar[bool] = True
    exports: ClassVar[bool] = True
    warm_starts: ClassVar[bool] = False
    #: This learner's own options (flags refused with other learners).
    options: ClassVar[tuple[Option, ...]] = ()
    #: The flags that choose this learner, for messages ("--model=sknn/vsknn").
    chosen_by: ClassVar[str] = ""

    @classmethod
    def check_config(cls, config: Any, method: Any) -> None:
        """Refuses a method (class) or flags this learner cannot train with.

        Raises:
            ValueError: naming the flags and why.
        """

    def __init__(self, run: RunContext) -> None:
        self.run = run
        self.config = run.config
        #: The trained model (a `SessionRecommender`), or None before the first cycle.
        self.model: Any = None

    # --- the cycle's steps, in the loop's order ---------------------------------------

    def resume(self, last: dict[str, Any]) -> None:
        """Restores what the finished cycle ``last`` left (its best model)."""

    def start_cycle(self, cycle: int, data: CycleData) -> CycleData:
        """Makes the model ready for ``cycle`` and returns the data it trains on."""
        return data

    def teacher(self, previous: dict[str, Any]) -> Any:
        """The frozen model of the finished cycle ``previous``; None where there is none."""
        return None

    def set_objective(self, objective: Any) -> None:
        """Trains the next epochs on ``objective``."""

    def train_epoch(self, cycle: int, epoch: int, data: CycleData) -> dict[str, float]:
        """Trains one epoch; returns its loss terms."""
        raise NotImplementedError

    def warm_start(self, cycle: int, data: CycleData, source: str) -> Training:
        """Takes the best model of ``cycle`` from the finished run in folder ``source``
        instead of training it (the model ready as `start_cycle` left it); returns that
        run's `Training` of the cycle, with no seconds spent here."""
        raise NotImplementedError

    def validate(self, cycle: int, epoch: int, data: CycleData) -> Metrics:
        """The model's metrics on ``data.valid``."""
        raise NotImplementedError

    def save_best(self, cycle: int, epoch: int) -> None:
        """Checkpoints the model as the best epoch of ``cycle`` so far."""

    def restore_best(self, cycle: int, epoch: int) -> None:
        """Restores the best epoch of ``cycle``."""

    def test(self, cycle: int, data: CycleData) -> Metrics:
        """The model's metrics on ``data.test``."""
        return self.evaluate(cycle, data.test, data.max_item)

    def evaluate(self, cycle: int, examples: Examples, max_item: int,
                 probes: bool = False) -> Metrics:
        """The metrics of the model of ``cycle`` on any examples over items 1..``max_item``
        (see `target_ranks`)."""
        from ader_tf.evaluation import metrics_from_ranks

        return metrics_from_ranks(self.target_ranks(cycle, examples, max_item, probes))

    def target_ranks(self, cycle: int, examples: Examples, max_item: int,
                     probes: bool = False) -> np.ndarray:
        """How many items the model of ``cycle`` scores above each example's target.

        Args:
            cycle: The cycle whose model ranks.
            examples: What to rank, filtered to items the cycle knows (a test set, probes).
            max_item: The largest item the cycle knows; items 1..max_item are ranked.
            probes: True where ``examples`` are the periods' probes, False for the cycle's
                test set: a learner that draws at random (kNN ties) keys its stream with it.

        Returns:
            int64 [len(examples)], 0-based ranks in the order of ``examples``.
        """
        raise NotImplementedError

    def export(self, cycle: int) -> None:
        """Writes the cycle's SavedModel."""

    # --- early stopping ----------------------------------------------------------------

    def train(self, cycle: int, data: CycleData) -> Training:
        """Trains with early stopping on validation Recall@20; restores the best epoch.

        Strictly better validation Recall@20 makes an epoch the best; ``--stop`` epochs
        without one end the cycle (the original's rule), at most ``--num_epochs``.
        """
        cfg = self.config
        best_perf, best_epoch, bad_epochs, epoch = -1.0, 0, 0, 0
        t0 = time.time()
        for epoch in range(1, cfg.num_epochs + 1):
            started = time.time()
            losses = self.train_epoch(cycle, epoch, data)
            self.run.on_phase(cycle, "training")
            if not all(math.isfinite(v) for v in losses.values()):
                raise TrainingDivergedError(
                    f"cycle {cycle} epoch {epoch}: loss is not finite ({losses}); the last "
                    f"good checkpoint is {self.last_good_checkpoint(cycle, best_epoch)}"
                )
            with self.stop_if_not_finite(cycle, f"validation epoch {epoch}", best_epoch):
                valid = self.validate(cycle, epoch, data)
            self._log_epoch(cycle, epoch, losses, valid, time.time() - started)
            if valid.recall20 > best_perf:
                best_perf, best_epoch, bad_epochs = valid.recall20, epoch, 0
                self.save_best(cycle, epoch)
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.stop:
                    break
        self.restore_best(cycle, best_epoch)
        return Training(epoch, best_epoch, time.time() - t0, best_perf if best_epoch else None)

    def _log_epoch(self, cycle: int, epoch: int, losses: dict[str, float], valid: Metrics,
                   seconds: float) -> None:
        import tensorflow as tf

        self.run.runlog.line(valid.log_line(epoch, "valid"))
        loss_text = ", ".join(f"{k} {v:.7g}" for k, v in sorted(losses.items()))
        log.info(
            "cycle %d epoch %d: %s | valid Recall@20 %.4f MRR@20 %.4f | %.1fs",
            cycle, epoch, loss_text, valid.recall20, valid.mrr20, seconds)
        with self.run.writer.as_default(step=epoch):
            for k, v in losses.items():
                tf.summary.scalar(f"cycle_{cycle}/train_{k}", v)
            tf.summary.scalar(f"cycle_{cycle}/valid_recall20", valid.recall20)
            tf.summary.scalar(f"cycle_{cycle}/valid_mrr20", valid.mrr20)

    # --- divergence ----------------------------------------------------------------------

    def last_good_checkpoint(self, cycle: int, best_epoch: int) -> str:
        """The newest checkpoint whose validation was finite, for divergence messages."""
        paths = self.run.paths
        if best_epoch:
            return os.path.join(paths.cycle_checkpoint_dir(cycle), f"epoch_{best_epoch}")
        last = self.run.state.last
        if last is None or not int(last["best_epoch"]):
            return "none (no epoch finished with finite scores)"
        return os.path.join(paths.cycle_checkpoint_dir(int(last["cycle"])),
                            f"epoch_{int(last['best_epoch'])}")

    @contextlib.contextmanager
    def stop_if_not_finite(self, cycle: int, phase: str, best_epoch: int) -> Iterator[None]:
        """Turns a NonFiniteError inside ``phase`` into a TrainingDivergedError naming it."""
        from ader_tf.evaluation import NonFiniteError

        try:
            yield
        except NonFiniteError as e:
            raise TrainingDivergedError(
                f"cycle {cycle} {phase}: {e}; the last good checkpoint is "
                f"{self.last_good_checkpoint(cycle, best_epoch)}"
            ) from e
