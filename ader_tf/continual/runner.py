"""The continual-learning loop: train, validate, test, select exemplars, cycle after cycle.

``run(config)`` is the whole product's main job; ``main.py`` only parses flags into a Config.
Every output is written atomically and ``state.json`` records finished cycles, so a killed
run started again with the same command continues with the first unfinished cycle and, with
the same seed, writes the same metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from typing import Any

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ader_tf.config import KNN_MODELS, Config
from ader_tf.continual import exemplar_selection, exemplar_store
from ader_tf.continual.artifacts import (
    CheckpointKeeper,
    RunPaths,
    RunState,
    RunStateError,
    cannot_resume,
    check_weights_stored,
    checkpoint_prefix,
    stored_item_count,
    write_metrics_csv,
)
from ader_tf.continual.methods import CycleContext, Method, make_method
from ader_tf.continual.reporting import RunLog, peak_rss_gb, write_plot, write_summary
from ader_tf.continual.teacher import frozen_teacher
from ader_tf.continual.workers import (
    COLLECTIVE_ERRORS,
    WorkerLostError,
    agree_on,
    distribution_strategy,
    worker_role,
    worker_scratch,
)
from ader_tf.data.cycles import ContinualData, CycleData
from ader_tf.data.examples import Examples
from ader_tf.data.periods import Sessions
from ader_tf.data.pipeline import (
    batch_count,
    training_dataset,
)
from ader_tf.data.sources import resolve_period_dir
from ader_tf.errors import AderError
from ader_tf.evaluation import (
    Metrics,
    NonFiniteError,
    apply_in_order,
    evaluate,
    metrics_from_ranks,
    require_finite,
)
from ader_tf.io_utils import (
    DamagedFileError,
    one_line,
    read_json,
    remove_unfinished_writes,
    write_json_atomic,
)

log = logging.getLogger(__name__)


class TrainingDivergedError(AderError, RuntimeError):
    """The loss or a model output (scores, losses, session vectors) became NaN or infinite.

    The message names the cycle, the phase and the last good checkpoint, which is kept.
    """

    exit_code = 1


# === Model construction ===


# The original sized its item table to every item of the whole dataset, future periods
# included, and TF1's Glorot limit follows the table's size. Our tables grow with the items
# seen so far; on the paper's two datasets their rows keep the limit of the original's table
# (its row count minus the padding row, i.e. the largest id over all 17 period files), so the
# paper's numbers do not move. Any other data keeps the limit of its first cycle's table.
ORIGINAL_TABLE_ITEMS = {"DIGINETICA": 43136, "YOOCHOOSE": 25958}


def table_items(current: int, needed: int, growth: float, limit: int | None = None) -> int:
    """Items the item tables hold after a cycle that needs ``needed`` (tables hold ``current``).

    Tables that are too small grow ``growth`` times (never beyond ``limit``, never below
    ``needed``), so a stream whose item set grows every cycle rebuilds its model, and retraces
    its functions, about log(final / first) / log(growth) times instead of every cycle.
    TensorFlow keeps some native memory for every trace it frees, so each rebuild costs memory
    for the rest of the run (`benchmarks/memory_over_cycles.py`). Rows beyond the largest item
    seen change no result: scores stop at ``max_item``, and a row that no example touches keeps
    its initial values and zero Adam moments, as a row added later starts with.
    """
    if needed <= current:
        return current
    grown = int(np.ceil(current * growth))
    if limit is not None:
        grown = min(grown, limit)
    return max(needed, grown)


def build_encoder(config: Config, num_items: int, dropout_rate: float, seed: int,
                  init_items: int | None = None) -> Any:
    """The ``--model`` backbone for ``num_items`` items (a neural model; see KNN_MODELS).

    ``init_items`` fixes the initialiser's scale of the item rows (see `SessionEncoder`).
    """
    if config.model == "sasrec":
        from ader_tf.models.sasrec import SASRecEncoder

        return SASRecEncoder(
            num_items=num_items,
            init_items=init_items,
            hidden_units=config.hidden_units,
            maxlen=config.maxlen,
            num_blocks=config.num_blocks,
            num_heads=config.num_heads,
            dropout_rate=dropout_rate,
            l2_emb=config.l2_emb,
            seed=seed,
            tied_dropout=config.tied_dropout,
            length_groups=config.length_groups,
        )
    if config.model == "gru4rec":
        from ader_tf.models.gru4rec import GRU4RecEncoder

        return GRU4RecEncoder(
            num_items=num_items,
            init_items=init_items,
            hidden_units=config.hidden_units,
            num_layers=config.gru4rec_layers,
            dropout_rate=dropout_rate,
            maxlen=config.maxlen,
            seed=seed,
        )
    if config.model in ("stamp", "stmp"):
        from ader_tf.models.stamp import STAMPEncoder

        return STAMPEncoder(
            num_items=num_items,
            init_items=init_items,
            hidden_units=config.hidden_units,
            attention=config.model == "stamp",
            maxlen=config.maxlen,
            dropout_rate=dropout_rate,
            seed=seed,
            output_activation="sigmoid" if config.stamp_sigmoid else "none",
        )
    raise ValueError(f"--model={config.model} has no neural encoder")


def build_model(config: Config, num_items: int, dropout_rate: float, seed: int,
                init_items: int | None = None) -> Any:
    """A compiled recommender around the ``--model`` backbone, optimizer slots built."""
    from ader_tf.models.recommender import SessionRecommender, make_optimizer

    model = SessionRecommender(build_encoder(config, num_items, dropout_rate, seed, init_items))
    model.compile(optimizer=make_optimizer(config.lr))
    model.build_all(config.maxlen)
    return model


# === Small helpers ===


def _logits_fn(model: Any):
    """Compiled logits with dropout off (one trace for any batch and width)."""
    return model.predict_logits


class _ProgressBar(keras.callbacks.Callback):
    """A tqdm bar over the batches of one epoch."""

    def __init__(self, total: int, desc: str, enabled: bool) -> None:
        super().__init__()
        self.bar = tqdm(total=total, desc=desc, leave=False, unit="b", disable=not enabled)
        self.first_loss: float | None = None

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self.bar.update(1)
        if batch == 0 and logs and "loss" in logs:
            self.first_loss = float(logs["loss"])  # compares distributed runs with one device
        if logs and "loss" in logs:
            self.bar.set_postfix(loss=f"{float(logs['loss']):.4f}")

    def on_train_end(self, logs: dict | None = None) -> None:
        self.bar.close()


# === One cycle ===


class ContinualRunner:
    """Runs the cycles of one config; see ``run``.

    Args:
        config: The run's configuration.
        on_phase: Called as ``on_phase(cycle, phase)`` at points where a kill must leave a
            resumable folder (tests kill the process there): ``"training"`` after each
            training epoch, ``"selection"`` before the exemplars are chosen,
            ``"exemplars_saved"`` after they are written and before the method's end-of-cycle
            files, ``"export"`` before the SavedModel export, ``"outputs_written"`` after the
            metrics files and before state.json. None: nothing is called.
    """

    def __init__(self, config: Config,
                 on_phase: Callable[[int, str], None] | None = None) -> None:
        # First: a multi-worker strategy must be set up before TensorFlow runs any op.
        self.strategy = distribution_strategy(config.distribution_strategy,
                                              config.collective_timeout)
        self.role = worker_role(self.strategy)
        root = os.path.join(config.results_dir, config.run_name)
        config = _as_stored(config, os.path.join(root, "config.json"))
        self.config = config
        # Only the chief writes under --results_dir; see `workers`.
        self.paths = RunPaths(root if self.role.is_chief
                              else worker_scratch(self.role, root, config.fingerprint()))
        self.on_phase = on_phase or (lambda cycle, phase: None)
        self.method: Method = make_method(config)
        self.is_knn = config.model in KNN_MODELS
        self.period_dir = resolve_period_dir(config.dataset, config.data_dir)
        self.data = ContinualData(
            self.period_dir, maxlen=config.maxlen, valid_portion=config.valid_portion,
            seed=config.random_seed,
        )
        self.num_cycles = self.data.num_cycles
        if config.cycles:
            self.num_cycles = min(config.cycles, self.num_cycles)
        self.state = RunState.load_or_new(self.paths.file("state.json"), config.fingerprint())
        self.runlog = RunLog(self.paths.file("Training_logs.txt"), config)
        self.model: Any = None
        self.teacher: Any = None
        self.exemplars: Examples | None = None
        self.stream_seen = 0  # examples the reservoir has seen (--selection=reservoir)
        self.writer = tf.summary.create_file_writer(self.paths.tensorboard)

    # --- model lifecycle -------------------------------------------------------------

    def _seed(self, cycle: int, salt: int = 0) -> int:
        return int(np.random.default_rng([self.config.random_seed, cycle, salt]).integers(2**31))

    def _init_items(self, first_cycle_items: int) -> int:
        """The item count whose Glorot limit initialises every item row of this run."""
        if self.config.dataset in ORIGINAL_TABLE_ITEMS:
            return ORIGINAL_TABLE_ITEMS[self.config.dataset]
        if self.state.cycles:
            return int(self.state.cycles[0]["max_item"])
        return first_cycle_items

    def _fresh_model(self, cycle: int, num_items: int, lineage: int | None = None) -> None:
        """A new model with item tables for ``num_items`` items, seeded for ``cycle``.

        ``lineage``: the cycle whose fresh start the model continues (default ``cycle``). A
        resumed model is built with that cycle's encoder seed, so the rows it adds when its
        tables grow are those an uninterrupted run adds.
        """
        keras.utils.set_random_seed(self._seed(cycle, 1))
        with self.strategy.scope():
            self.model = build_model(
                self.config, num_items, self.method.dropout_rate,
                self._seed(lineage or cycle, 2), self._init_items(num_items),
            )
        self._keep_checkpoints_of(self.model)

    def _keep_checkpoints_of(self, model: Any) -> None:
        self.keeper = CheckpointKeeper(
            self.paths,
            tf.train.Checkpoint(model=model, optimizer=model.optimizer),
            checked=model.encoder,
        )

    def _table_items(self, needed: int) -> int:
        """The table size for a cycle that needs ``needed`` items (see `table_items`)."""
        growth = self.config.table_growth if self.config.l2_emb == 0 else 1.0
        return table_items(self.model.encoder.num_items, needed, growth,
                           ORIGINAL_TABLE_ITEMS.get(self.config.dataset))

    def _grow(self, cycle: int, needed: int) -> None:
        """Gives the model rows for the items that ``cycle`` brings, and spare rows (weights
        and optimizer state carried over; see `grow_items` and `table_items`)."""
        from ader_tf.models.growth import grow_items

        before = self.model.encoder.num_items
        num_items = self._table_items(needed)
        with self.strategy.scope():
            self.model = grow_items(self.model, num_items)
        self._keep_checkpoints_of(self.model)
        log.info("cycle %d: item tables grown from %d to %d items (%d seen so far)", cycle,
                 before, num_items, needed)

    def _teacher(self, cycle: int, epoch: int, max_item: int) -> Any:
        """The frozen model of a finished cycle: the student as it starts the next one.

        At this point the student holds the best epoch of ``cycle`` (restored when that cycle
        ended, or on resume), so ``frozen_teacher`` copies its weights, and every copied
        weight is compared with the checkpoint. One teacher object serves the whole run.
        """
        prefix = self.keeper.prefix(cycle, epoch)
        with self.strategy.scope():
            self.teacher = frozen_teacher(self.model, max_item, reuse=self.teacher)
        try:
            check_weights_stored(self.teacher.encoder, prefix)
        except (ValueError, AssertionError) as e:
            raise RunStateError(
                f"{prefix}: the teacher does not hold this checkpoint's weights ({e})"
            ) from e
        return self.teacher

    def _resume(self) -> int:
        """Restores the state after the last completed cycle; returns the next cycle."""
        last = self.state.last
        if last is None:
            return 1
        cycle = int(last["cycle"])
        log.info("resuming after cycle %d (found %s)", cycle, self.paths.file("state.json"))
        if self.method.keeps_exemplars:
            self.exemplars = self._load_exemplars(cycle, int(last["max_item"]))
        if self.is_knn:  # nothing trained: only the exemplars carry over
            return cycle + 1
        epoch = int(last["best_epoch"])
        lineage = cycle if self.method.retrains_from_scratch else 1
        # Runs made before tables grew hold tables for every item of the period files then
        # present: they resume at that size.
        items = stored_item_count(checkpoint_prefix(self.paths, cycle, epoch))
        self._fresh_model(cycle, items, lineage)
        self.keeper.restore(cycle, epoch)
        self.model.set_max_item(int(last["max_item"]))
        self.method.restore(self._context(cycle, None, previous=None))
        return cycle + 1

    def _context(self, cycle: int, data: CycleData | None, previous: dict | None,
                 origin: np.ndarray | None = None) -> CycleContext:
        """What the method sees of ``cycle``; the teacher is built only if it asks."""

        def teacher() -> Any:
            if previous is None:
                raise RunStateError(f"cycle {cycle}: there is no previous cycle to distil from")
            return self._teacher(int(previous["cycle"]), int(previous["best_epoch"]),
                                 int(previous["max_item"]))

        return CycleContext(
            cycle=cycle, config=self.config, model=self.model, data=data, previous=previous,
            exemplars=self.exemplars, exemplar_origin=origin, teacher=teacher,
            state_path=self.paths.method_state, seed=lambda salt: self._seed(cycle, salt),
        )

    # --- exemplars ---------------------------------------------------------------------

    def _exemplar_metadata(self, cycle: int, max_item: int) -> dict[str, Any]:
        return {
            "cycle": cycle,
            "max_item": max_item,
            "method": self.config.selection,
            "config_fingerprint": self.config.fingerprint(),
        }

    def _load_exemplars(self, cycle: int, max_item: int) -> Examples:
        inputs, targets, metadata = exemplar_store.load_exemplars(
            self.paths.exemplars(cycle), expected=self._exemplar_metadata(cycle, max_item)
        )
        self.stream_seen = int(metadata.get("stream_seen", 0))
        return Examples(inputs, targets)

    def _select_exemplars(self, cycle: int, data: CycleData) -> tuple[Examples, np.ndarray]:
        """Picks and saves the exemplars kept after ``cycle``.

        Returns them and, for each, its row in the previous exemplar set (-1: a new row).
        """
        new = Examples.concatenate([data.train, data.valid])
        rng = np.random.default_rng([self.config.random_seed, cycle, 3])
        metadata = self._exemplar_metadata(cycle, data.max_item)
        if self.config.selection == "reservoir":
            old = self.exemplars if self.exemplars is not None else new.subset(np.arange(0))
            index = exemplar_selection.reservoir_select(
                len(old), self.stream_seen, len(new), self.config.exemplar_size, rng
            )
            chosen = Examples.concatenate([old, new]).subset(index)
            origin = np.where(index < len(old), index, -1)
            self.stream_seen += len(new)
            metadata["stream_seen"] = self.stream_seen  # what the next cycle's draws depend on
        else:
            chosen, origin = self._select_by_item_quota(data, new, rng)
        exemplar_store.save_exemplars(
            self.paths.exemplars(cycle), chosen.inputs, chosen.targets, metadata
        )
        return chosen, origin

    def _select_by_item_quota(
        self, data: CycleData, new: Examples, rng: np.random.Generator
    ) -> tuple[Examples, np.ndarray]:
        """ADER's selection: a quota per item, filled by herding, loss or at random from this
        cycle's examples and the previous exemplars (one forward pass, then per item)."""
        candidates = Examples.concatenate([new] + ([self.exemplars] if self.exemplars else []))
        quotas = exemplar_selection.exemplar_quotas(
            candidates.targets, self.config.exemplar_size, data.max_item,
            self.config.equal_exemplar, rng,
        )
        reps = losses = None
        batch = max(self.config.test_batch, 512)
        if self.config.selection == "herding":
            reps = require_finite(apply_in_order(
                lambda f, t: self.model.represent(f["item_ids"]), candidates, batch,
                self._bar_label("Representing candidates"),
            ), "session vectors")
        elif self.config.selection == "loss":
            losses = require_finite(apply_in_order(
                self.model.per_example_loss, candidates, batch,
                self._bar_label("Scoring candidates")
            ), "losses")
        index = exemplar_selection.select_exemplars(
            candidates.targets, quotas, self.config.selection, reps=reps, losses=losses, rng=rng
        )
        return candidates.subset(index), np.where(index >= len(new), index - len(new), -1)

    def _keep_exemplars(self, cycle: int, data: CycleData, prev: dict | None) -> tuple[int, float]:
        """After testing: selects the exemplars if the method keeps them, then runs the
        method's end-of-cycle hook (e.g. EWC's Fisher information on them).

        Returns the number kept and the seconds it took.
        """
        t0 = time.time()
        origin = None
        if self.method.keeps_exemplars:
            self.exemplars, origin = self._select_exemplars(cycle, data)
            self.on_phase(cycle, "exemplars_saved")
            self.runlog.line(f"Total saved exemplar: {len(self.exemplars)}")
        if not self.is_knn:
            self.method.after_cycle(self._context(cycle, data, prev, origin))
        return len(self.exemplars) if self.method.keeps_exemplars else 0, time.time() - t0

    # --- training ----------------------------------------------------------------------

    def _set_objective(self, cycle: int, data: CycleData, prev: dict | None) -> float:
        """Sets this cycle's objective on the model; returns its weight (logged as lambda)."""
        ctx = self._context(cycle, data, prev)
        with self.strategy.scope():  # objectives may create variables (their weights)
            self.model.set_objective(self.method.objective(ctx))
        return self.method.weight(ctx)

    def _fit_epoch(self, cycle: int, epoch: int, data: CycleData) -> dict[str, float]:
        """One epoch of the protocol's training (prefix examples, full softmax)."""
        cfg = self.config
        replay = self.exemplars if self.method.replays_exemplars and cycle > 1 else None
        num_batches = batch_count(len(data.train), cfg.batch_size)
        dataset = training_dataset(
            data.train, cfg.batch_size, [cfg.random_seed, cycle, epoch], replay
        )
        bar = _ProgressBar(num_batches, f"Cycle {cycle} epoch {epoch}", cfg.progress)
        history = self.model.fit(dataset, epochs=1, verbose=0, callbacks=[bar], shuffle=False)
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        if bar.first_loss is not None:
            losses["first_step_loss"] = bar.first_loss
        return losses

    def _bar_label(self, desc: str) -> str | None:
        """``desc`` as a progress bar's label, or None (no bar) under ``--noprogress``."""
        return desc if self.config.progress else None

    def _session_parallel_trainer(self, cycle: int) -> Any:
        """GRU4Rec's own trainer on this cycle's model (its optimizer and state included)."""
        from ader_tf.continual.session_parallel import SessionParallelTrainer

        cfg = self.config
        return SessionParallelTrainer(
            self.model.encoder, optimizer=self.model.optimizer, loss=cfg.gru4rec_loss,
            batch_size=cfg.batch_size, n_sample=cfg.gru4rec_n_sample,
            sample_alpha=cfg.gru4rec_sample_alpha, seed=self._seed(cycle, 6),
            items=self.model.max_item,
        )

    def _train_epochs(
        self, cycle: int, data: CycleData, sessions: Sessions | None = None
    ) -> tuple[int, int, float]:
        """Trains with early stopping on validation Recall@20; restores the best epoch.

        With ``sessions`` (GRU4Rec's session-parallel mode) each epoch is one session-parallel
        pass over them instead of the prefix examples.
        """
        cfg = self.config
        trainer = self._session_parallel_trainer(cycle) if sessions is not None else None
        best_perf, best_epoch, bad_epochs, epoch = -1.0, 0, 0, 0
        t0 = time.time()
        for epoch in range(1, cfg.num_epochs + 1):
            started = time.time()
            if trainer is not None:
                losses = {"loss": trainer.train_epoch(sessions, progress=cfg.progress)}
            else:
                losses = self._fit_epoch(cycle, epoch, data)
            self.on_phase(cycle, "training")
            if not all(math.isfinite(v) for v in losses.values()):
                raise TrainingDivergedError(
                    f"cycle {cycle} epoch {epoch}: loss is not finite ({losses}); the last "
                    f"good checkpoint is {self._last_good_checkpoint(cycle, best_epoch)}"
                )
            with self._stop_if_not_finite(cycle, f"validation epoch {epoch}", best_epoch):
                valid = evaluate(_logits_fn(self.model), data.valid, cfg.test_batch,
                                 self._bar_label(f"Validating epoch {epoch}"))
            self.runlog.line(valid.log_line(epoch, "valid"))
            loss_text = ", ".join(f"{k} {v:.7g}" for k, v in sorted(losses.items()))
            log.info("cycle %d epoch %d: %s | valid Recall@20 %.4f MRR@20 %.4f | %.1fs",
                     cycle, epoch, loss_text, valid.recall20, valid.mrr20, time.time() - started)
            with self.writer.as_default(step=epoch):
                for k, v in losses.items():
                    tf.summary.scalar(f"cycle_{cycle}/train_{k}", v)
                tf.summary.scalar(f"cycle_{cycle}/valid_recall20", valid.recall20)
                tf.summary.scalar(f"cycle_{cycle}/valid_mrr20", valid.mrr20)
            if valid.recall20 > best_perf:
                best_perf, best_epoch, bad_epochs = valid.recall20, epoch, 0
                self.keeper.save(cycle, epoch)
            else:
                bad_epochs += 1
                if bad_epochs >= cfg.stop:
                    break
        self.keeper.restore(cycle, best_epoch)
        return epoch, best_epoch, time.time() - t0

    def run_cycle(self, cycle: int) -> dict[str, Any]:
        """Trains, tests and selects exemplars for one cycle; returns its metrics row."""
        cfg = self.config
        prev = self.state.last
        self.runlog.start_cycle(cycle)
        data = self.data.cycle(cycle, joint=self.method.retrains_from_scratch)
        self.runlog.line(
            f"Train set information: total number of action: {data.stats['train_clicks']}."
        )
        self.runlog.line(
            "Test set information: original total number of action: "
            f"{data.stats['test_clicks']}, removed number of action: "
            f"{data.stats['test_clicks_unseen_items_removed'] + data.stats['test_sessions_dropped_one_click']}."  # noqa: E501
        )
        log.info("cycle %d: %d train / %d valid / %d test examples, %d items", cycle,
                 len(data.train), len(data.valid), len(data.test), data.max_item)
        if self.is_knn:
            return self._run_knn_cycle(cycle, data)
        sessions = None
        if cfg.gru4rec_training == "session_parallel":
            sessions, valid = self.data.session_split(
                cycle, joint=self.method.retrains_from_scratch
            )
            data = dataclasses.replace(data, valid=valid)
            log.info("cycle %d: session-parallel training on %d sessions, %d validation "
                     "examples from held-out sessions", cycle, len(sessions), len(valid))
        if self.model is None or self.method.retrains_from_scratch:
            self._fresh_model(cycle, data.max_item)
        elif data.max_item > self.model.encoder.num_items:
            self._grow(cycle, data.max_item)
        self.model.set_max_item(data.max_item)
        self.model.reseed_dropout(self._seed(cycle, 5))
        lam = self._set_objective(cycle, data, prev)

        epochs_run, best_epoch, train_seconds = self._train_epochs(cycle, data, sessions)

        t0 = time.time()
        with self._stop_if_not_finite(cycle, "test", best_epoch):
            test = evaluate(_logits_fn(self.model), data.test, cfg.test_batch,
                            self._bar_label("Testing"))
        test_seconds = time.time() - t0
        self.runlog.line(test.log_line(best_epoch, "test"))

        self.on_phase(cycle, "selection")
        with self._stop_if_not_finite(cycle, "exemplar selection", best_epoch):
            kept, selection_seconds = self._keep_exemplars(cycle, data, prev)

        if cfg.export_saved_models:
            self.on_phase(cycle, "export")
            self._export(cycle)
        return self._cycle_row(
            cycle, data, test, epochs_run=epochs_run, best_epoch=best_epoch, lam=lam, kept=kept,
            seconds=(train_seconds, selection_seconds, test_seconds),
        )

    # --- divergence ------------------------------------------------------------------

    def _last_good_checkpoint(self, cycle: int, best_epoch: int) -> str:
        """The newest checkpoint whose validation was finite, for divergence messages."""
        if best_epoch:
            return os.path.join(self.paths.cycle_checkpoint_dir(cycle), f"epoch_{best_epoch}")
        last = self.state.last
        if last is None or not int(last["best_epoch"]):
            return "none (no epoch finished with finite scores)"
        return os.path.join(self.paths.cycle_checkpoint_dir(int(last["cycle"])),
                            f"epoch_{int(last['best_epoch'])}")

    @contextlib.contextmanager
    def _stop_if_not_finite(self, cycle: int, phase: str, best_epoch: int) -> Iterator[None]:
        """Turns a NonFiniteError inside ``phase`` into a TrainingDivergedError naming it."""
        try:
            yield
        except NonFiniteError as e:
            raise TrainingDivergedError(
                f"cycle {cycle} {phase}: {e}; the last good checkpoint is "
                f"{self._last_good_checkpoint(cycle, best_epoch)}"
            ) from e

    def _cycle_row(
        self, cycle: int, data: CycleData, test: Metrics, *, epochs_run: int, best_epoch: int,
        lam: float, kept: int, seconds: tuple[float, float, float],
    ) -> dict[str, Any]:
        """The metrics row of a finished cycle (also logged and sent to TensorBoard)."""
        train_seconds, selection_seconds, test_seconds = seconds
        row = {
            "cycle": cycle, "epochs_run": epochs_run, "best_epoch": best_epoch,
            "mrr20": test.mrr20, "recall20": test.recall20, "mrr10": test.mrr10,
            "recall10": test.recall10, "test_examples": test.num_examples, "lambda": lam,
            "exemplars_kept": kept, "train_seconds": round(train_seconds, 2),
            "selection_seconds": round(selection_seconds, 2),
            "test_seconds": round(test_seconds, 2), "ndcg20": test.ndcg20,
            "ndcg10": test.ndcg10, "max_item": data.max_item,
            "log_lines": self.runlog.current_lines(),
        }
        with self.writer.as_default(step=cycle):
            for k in ("mrr20", "recall20", "mrr10", "recall10", "ndcg20", "ndcg10"):
                tf.summary.scalar(f"test/{k}", row[k])
        log.info("cycle %d: test Recall@20 %.4f MRR@20 %.4f (best epoch %d of %d)", cycle,
                 test.recall20, test.mrr20, best_epoch, epochs_run)
        return row

    def _knn_memory(self, cycle: int) -> Sessions:
        """The past sessions a session-kNN model remembers at ``cycle``, oldest first.

        --joint: every training period; --finetune: the last ``knn_window`` ones; ER with
        random selection: the previous exemplars' sessions, then the last period.
        """
        from ader_tf.data.examples import sessions_from_examples

        method = self.method
        if method.retrains_from_scratch:
            periods = list(range(cycle))
        elif not method.keeps_exemplars:
            periods = list(range(max(0, cycle - self.config.knn_window), cycle))
        else:
            periods = [cycle - 1]
        parts = [self.data.sessions(p) for p in periods]
        if method.keeps_exemplars and self.exemplars is not None and len(self.exemplars):
            parts.insert(0, sessions_from_examples(self.exemplars))
        return Sessions.concatenate(parts)

    def _run_knn_cycle(self, cycle: int, data: CycleData) -> dict[str, Any]:
        """Tests a session-kNN model on ``cycle``: nothing to train, only a memory to set."""
        from ader_tf.models.sknn import SessionKNN

        cfg = self.config
        t0 = time.time()
        memory = self._knn_memory(cycle)
        knn = SessionKNN(k=cfg.knn_k, sample_size=cfg.knn_sample_size,
                         sequential=cfg.model == "vsknn").fit(memory)
        memory_seconds = time.time() - t0
        log.info("cycle %d: %s remembers %d sessions", cycle, cfg.model, len(memory))
        t0 = time.time()
        ranks = knn.target_ranks(data.test, data.max_item, batch_size=max(cfg.test_batch, 512),
                                 seed=self._seed(cycle, 8))  # ties broken at random
        test = metrics_from_ranks(ranks)
        test_seconds = time.time() - t0
        self.runlog.line(test.log_line(0, "test"))
        kept, selection_seconds = self._keep_exemplars(cycle, data, self.state.last)
        return self._cycle_row(
            cycle, data, test, epochs_run=0, best_epoch=0, lam=0.0, kept=kept,
            seconds=(memory_seconds, selection_seconds, test_seconds),
        )

    def _export(self, cycle: int) -> None:
        """Writes the cycle's SavedModel; in the log's own ids too where items.csv names them."""
        from ader_tf.export import export_saved_model

        export_saved_model(self.model, self.paths.saved_model(cycle), k=self.config.export_k,
                           raw_item_ids=self.raw_item_ids)

    @functools.cached_property
    def raw_item_ids(self) -> list[str] | None:
        """The log's id of each item (entry i: item i + 1), from items.csv; None without it."""
        from preprocessing.state import ITEMS_FILE, read_items

        if not os.path.isfile(os.path.join(self.period_dir, ITEMS_FILE)):
            return None
        items = read_items(self.period_dir)
        if not np.array_equal(items["item_id"].to_numpy(), np.arange(1, len(items) + 1)):
            raise RunStateError(f"{os.path.join(self.period_dir, ITEMS_FILE)}: item_id must "
                                "run 1, 2, 3, ... without gaps; preprocess the log again")
        return items["raw_id"].astype(str).tolist()

    # --- the loop ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        """Runs every unfinished cycle; a worker that is not the chief then removes its
        scratch folder."""
        try:
            return self._run()
        except COLLECTIVE_ERRORS as e:
            if self.role.task_type is None:
                raise
            raise WorkerLostError(
                f"{self.role.name}: lost the other workers ({type(e).__name__}: "
                f"{one_line(str(e).split(chr(10), 1)[0])}); start every worker again with the "
                "same command to resume at the first unfinished cycle"
            ) from e
        finally:
            if not self.role.is_chief:
                self.writer.close()
                shutil.rmtree(self.paths.root, ignore_errors=True)

    def _run(self) -> dict[str, Any]:
        self._remove_unfinished_writes()
        write_json_config(self.paths.file("config.json"), self.config)
        explained = self.config.explain_dataset_defaults()
        if explained:
            log.info("%s", explained)
        self.runlog.restore(self.state.cycles)
        try:
            first = self._resume()
        except (DamagedFileError, RunStateError) as e:
            raise RunStateError(f"{e}; {cannot_resume(self.paths.root)}") from e
        if not agree_on(self.strategy, first):
            raise RunStateError(
                f"{self.role.name}: the workers would start at different cycles (this one at "
                f"{first}); every worker must see the chief's --results_dir (a shared folder)"
            )
        if first > 1 and first <= self.num_cycles:
            self.runlog.note(f"Resumed at cycle {first}.")
        started = time.time()
        for cycle in range(first, self.num_cycles + 1):
            cpu_start = time.process_time()
            row = self.run_cycle(cycle)
            # What the cycle cost this process: CPU time (all threads; a shared machine's
            # load stretches wall time, not this) and the peak memory so far, so that a run
            # split over several processes still adds up to its whole cost.
            row["cpu_seconds"] = round(time.process_time() - cpu_start, 1)
            row["peak_rss_gb"] = peak_rss_gb()
            self.state.cycles.append(row)
            self._write_outputs()
            self.on_phase(cycle, "outputs_written")
            self.state.save(self.paths.file("state.json"))  # last: its presence = cycle done
            self.runlog.finish_cycle()
        summary = self._write_outputs(final=True, seconds=time.time() - started)
        return summary

    def _remove_unfinished_writes(self) -> None:
        """Removes the temporaries of writes a kill interrupted (each write is redone, or
        its file was already complete under its own name), so a resumed folder holds what an
        uninterrupted one does. Nothing else writes to this folder at this point."""
        removed = remove_unfinished_writes(self.paths.root)
        if removed:
            log.info("removed %d unfinished write(s) a stopped run left in %s: %s", len(removed),
                     self.paths.root, ", ".join(os.path.relpath(p, self.paths.root)
                                                for p in removed))

    def _write_outputs(self, final: bool = False, seconds: float | None = None) -> dict:
        rows = self.state.cycles
        write_metrics_csv(self.paths.file("metrics.csv"), rows)
        summary = write_summary(self.paths.file("summary.json"), self.config, rows)
        write_plot(self.paths.file("metrics.png"), rows, self.config.run_name)
        if final:
            self.runlog.finish_run(summary, seconds)
        return summary


def _as_stored(config: Config, path: str) -> Config:
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


def write_json_config(path: str, config: Config) -> None:
    write_json_atomic(path, {**config.to_dict(), "fingerprint": config.fingerprint()})


def run(config: Config) -> dict[str, Any]:
    """Runs (or resumes) every cycle of ``config``; returns the summary (means over cycles).

    Raises:
        RunStateError: the results folder belongs to another config or is damaged.
        TrainingDivergedError: the loss, scores or session vectors became NaN or infinite.
    """
    return ContinualRunner(config).run()


__all__ = ["run", "ContinualRunner", "TrainingDivergedError", "RunStateError", "WorkerLostError"]
