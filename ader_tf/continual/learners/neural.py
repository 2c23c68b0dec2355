"""The protocol's training of a neural backbone: prefix examples, full softmax, `model.fit`."""

from __future__ import annotations

import functools
import logging
import os
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ader_tf.continual.learners.base import Learner, Training
from ader_tf.models.factory import build_model

# A learner's declaration is read without TensorFlow, as by `--help`: what needs it (Keras,
# the checkpoints, the data pipeline, evaluation) is imported inside the methods that use it.
if TYPE_CHECKING:
    from ader_tf.data.cycles import CycleData
    from ader_tf.data.examples import Examples
    from ader_tf.evaluation import Metrics

log = logging.getLogger(__name__)

# The original sized its item table to every item of the whole dataset, future periods
# included, and TF1's Glorot limit follows the table's size. Our tables grow with the items
# seen so far; on the paper's two datasets their rows keep the limit of the original's table
# (its row count minus the padding row, i.e. the largest id over all 17 period files), so the
# paper's numbers do not move. Any other data keeps the limit of its first cycle's table.
ORIGINAL_TABLE_ITEMS = {"DIGINETICA": 43136, "YOOCHOOSE": 25958}
# Rows per forward pass of the probes (every period's, after every cycle): 512 rows rank
# DIGINETICA's probes in 0.61x the time of 64 rows at cycle 8 and 0.70x at cycle 1
# (benchmarks/probe_pass.py; the item table is read once per batch, 8x less often), holding
# 512 rows of scores at once (88 MB at DIGINETICA's 43,136 items). Another batch shape may
# round a score's last bits otherwise: one probe example in 40,341 ranked otherwise at
# cycle 1, none of 68,914 at cycle 8.
PROBE_BATCH = 512


class NeuralLearner(Learner):
    """SASRec, GRU4Rec, STAMP or STMP trained on the protocol's prefix examples.

    Each cycle continues from the previous cycle's best epoch (a method that retrains from
    scratch gets a new model), with item tables grown for the items the cycle brings.
    """

    name: ClassVar[str] = "neural"
    chosen_by: ClassVar[str] = "--model=sasrec/gru4rec/stamp/stmp"
    warm_starts: ClassVar[bool] = True

    # --- model lifecycle -------------------------------------------------------------

    def _init_items(self, first_cycle_items: int) -> int:
        """The item count whose Glorot limit initialises every item row of this run."""
        if self.config.dataset in ORIGINAL_TABLE_ITEMS:
            return ORIGINAL_TABLE_ITEMS[self.config.dataset]
        if self.run.state.cycles:
            return int(self.run.state.cycles[0]["max_item"])
        return first_cycle_items

    def fresh_model(self, cycle: int, num_items: int, lineage: int | None = None) -> None:
        """A new model with item tables for ``num_items`` items, seeded for ``cycle``.

        ``lineage``: the cycle whose fresh start the model continues (default ``cycle``). A
        resumed model is built with that cycle's encoder seed, so the rows it adds when its
        tables grow are those an uninterrupted run adds.
        """
        import keras

        # Keras' global seed, for any draw no stream below reaches.
        keras.utils.set_random_seed(self.run.seed(cycle, "keras_global"))
        with self.run.strategy.scope():
            self.model = build_model(
                self.config, num_items, self.run.method.dropout_rate,
                self.run.seed(lineage or cycle, "encoder_init"), self._init_items(num_items),
            )
        self._keep_checkpoints_of(self.model)

    def _keep_checkpoints_of(self, model: Any) -> None:
        import tensorflow as tf

        from ader_tf.continual.artifacts import CheckpointKeeper

        self.keeper = CheckpointKeeper(
            self.run.paths,
            tf.train.Checkpoint(model=model, optimizer=model.optimizer),
            checked=model.encoder,
        )

    def _table_items(self, needed: int) -> int:
        """The table size for a cycle that needs ``needed`` items (see `table_items`)."""
        from ader_tf.models.growth import table_items

        growth = self.config.table_growth if self.config.l2_emb == 0 else 1.0
        return table_items(self.model.encoder.num_items, needed, growth,
                           ORIGINAL_TABLE_ITEMS.get(self.config.dataset))

    def _grow(self, cycle: int, needed: int) -> None:
        """Gives the model rows for the items that ``cycle`` brings, and spare rows (weights
        and optimizer state carried over; see `grow_items` and `table_items`)."""
        from ader_tf.models.growth import grow_items

        before = self.model.encoder.num_items
        num_items = self._table_items(needed)
        with self.run.strategy.scope():
            self.model = grow_items(self.model, num_items)
        self._keep_checkpoints_of(self.model)
        log.info("cycle %d: item tables grown from %d to %d items (%d seen so far)", cycle,
                 before, num_items, needed)

    def resume(self, last: dict[str, Any]) -> None:
        from ader_tf.continual.artifacts import checkpoint_prefix, stored_item_count

        cycle, epoch = int(last["cycle"]), int(last["best_epoch"])
        lineage = cycle if self.run.method.retrains_from_scratch else 1
        # Runs made before tables grew hold tables for every item of the period files then
        # present: they resume at that size.
        items = stored_item_count(checkpoint_prefix(self.run.paths, cycle, epoch))
        self.fresh_model(cycle, items, lineage)
        self.keeper.restore(cycle, epoch)
        self.model.set_max_item(int(last["max_item"]))

    def start_cycle(self, cycle: int, data: CycleData) -> CycleData:
        if self.model is None or self.run.method.retrains_from_scratch:
            self.fresh_model(cycle, data.max_item)
        elif data.max_item > self.model.encoder.num_items:
            self._grow(cycle, data.max_item)
        self.model.set_max_item(data.max_item)
        self.model.reseed_dropout(
            lambda layer: self.run.streams.tf_seed_pair("dropout", cycle, layer))
        return data

    def teacher(self, previous: dict[str, Any]) -> Any:
        """The frozen model of the finished cycle: the student as it starts the next one.

        At this point the student holds the best epoch of ``previous`` (restored when that
        cycle ended, or on resume), so ``frozen_teacher`` copies its weights, and every
        copied weight is compared with the checkpoint. One teacher object serves the run
        while the item tables keep their size (a new one would retrace the training step).
        """
        from ader_tf.continual.artifacts import RunStateError, check_weights_stored
        from ader_tf.continual.teacher import frozen_teacher

        prefix = self.keeper.prefix(int(previous["cycle"]), int(previous["best_epoch"]))
        with self.run.strategy.scope():
            self._teacher = frozen_teacher(self.model, int(previous["max_item"]),
                                           reuse=getattr(self, "_teacher", None))
        try:
            check_weights_stored(self._teacher.encoder, prefix)
        except (ValueError, AssertionError) as e:
            raise RunStateError(
                f"{prefix}: the teacher does not hold this checkpoint's weights ({e})"
            ) from e
        return self._teacher

    def warm_start(self, cycle: int, data: CycleData, source: str) -> Training:
        """Restores the best epoch of ``source``'s cycle (model and optimizer, checked value
        by value) and keeps it as this run's own checkpoint of the cycle, which the teacher
        and a resumed run read."""
        from ader_tf.continual.artifacts import CheckpointKeeper, RunPaths, RunStateError
        from ader_tf.continual.warm_start import first_cycle_record

        record = first_cycle_record(self.config, source, cycle)
        if int(record["max_item"]) != data.max_item:
            raise RunStateError(f"{source}: its cycle {cycle} knew {record['max_item']} items, "
                                f"this run's knows {data.max_item}: other period files")
        best = int(record["best_epoch"])
        CheckpointKeeper(RunPaths(source), self.keeper.checkpoint,
                         checked=self.model.encoder).restore(cycle, best)
        self.save_best(cycle, best)
        valid = record.get("valid_recall20")
        return Training(int(record["epochs_run"]), best, 0.0,
                        None if valid is None else float(valid))

    def set_objective(self, objective: Any) -> None:
        with self.run.strategy.scope():  # objectives may create variables (their metrics)
            self.model.set_objective(objective)

    # --- one epoch ---------------------------------------------------------------------

    def train_epoch(self, cycle: int, epoch: int, data: CycleData) -> dict[str, float]:
        """One epoch of the protocol's training (prefix examples, full softmax)."""
        from ader_tf.continual.progress import ProgressBar
        from ader_tf.data.pipeline import batch_count, training_dataset

        cfg = self.config
        replay = self.run.exemplars() if self.run.method.replays_exemplars and cycle > 1 \
            else None
        num_batches = batch_count(len(data.train), cfg.batch_size)
        dataset = training_dataset(
            data.train, cfg.batch_size, self.run.streams.sequence("shuffle", cycle, epoch), replay
        )
        bar = ProgressBar(num_batches, f"Cycle {cycle} epoch {epoch}", cfg.progress)
        history = self.model.fit(dataset, epochs=1, verbose=0, callbacks=[bar], shuffle=False)
        losses = {k: float(v[-1]) for k, v in history.history.items()}
        if bar.first_loss is not None:
            losses["first_step_loss"] = bar.first_loss
        return losses

    def validate(self, cycle: int, epoch: int, data: CycleData) -> Metrics:
        from ader_tf.evaluation import evaluate

        return evaluate(self.model.predict_logits, data.valid, self.config.test_batch,
                        self.run.bar_label(f"Validating epoch {epoch}"))

    def save_best(self, cycle: int, epoch: int) -> None:
        self.keeper.save(cycle, epoch)

    def restore_best(self, cycle: int, epoch: int) -> None:
        self.keeper.restore(cycle, epoch)

    def target_ranks(self, cycle: int, examples: Examples, max_item: int,
                     probes: bool = False) -> np.ndarray:
        from ader_tf.evaluation import evaluate_ranks

        # The model scores items 1..max_item already (set when the cycle started). The test
        # set keeps --test_batch (the original's 64); the probes, ours, go in larger batches.
        batch = max(self.config.test_batch, PROBE_BATCH) if probes else self.config.test_batch
        return evaluate_ranks(self.model.predict_logits, examples, batch,
                              self.run.bar_label("Probes" if probes else "Testing"))

    # --- export ------------------------------------------------------------------------

    def export(self, cycle: int) -> None:
        """Writes the cycle's SavedModel; in the log's own ids too where items.csv names them."""
        from ader_tf.export import export_saved_model

        export_saved_model(self.model, self.run.paths.saved_model(cycle),
                           k=self.config.export_k, raw_item_ids=self.raw_item_ids)

    @functools.cached_property
    def raw_item_ids(self) -> list[str] | None:
        """The log's id of each item (entry i: item i + 1), from items.csv; None without it."""
        from ader_tf.continual.artifacts import RunStateError
        from preprocessing.state import ITEMS_FILE, read_items

        period_dir = self.run.data.period_dir
        if not os.path.isfile(os.path.join(period_dir, ITEMS_FILE)):
            return None
        items = read_items(period_dir)
        if not np.array_equal(items["item_id"].to_numpy(), np.arange(1, len(items) + 1)):
            raise RunStateError(f"{os.path.join(period_dir, ITEMS_FILE)}: item_id must "
                                "run 1, 2, 3, ... without gaps; preprocess the log again")
        return items["raw_id"].astype(str).tolist()
