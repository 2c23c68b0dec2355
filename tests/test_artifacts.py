"""Best-epoch checkpoints: written atomically, and a restore is checked weight by weight."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import tensorflow as tf

from ader_tf.continual.artifacts import (
    METRIC_COLUMNS,
    CheckpointKeeper,
    RunPaths,
    RunStateError,
    check_weights_stored,
    write_metrics_csv,
)
from ader_tf.models.factory import build_encoder, build_model
from ader_tf.models.recommender import SessionRecommender
from ader_tf.plugins import make_config

SMALL = dict(hidden_units=8, maxlen=6, num_blocks=1, num_heads=1)


def _model(seed: int):
    return build_model(make_config(**SMALL), num_items=20, dropout_rate=0.0, seed=seed)


def _uncompiled_model(seed: int):
    """A model without an optimizer, as the distillation teacher is built."""
    model = SessionRecommender(build_encoder(make_config(**SMALL), 20, 0.0, seed))
    model.build_all(SMALL["maxlen"])
    return model


def _block_kernel(model):
    return next(w for w in model.encoder.weights if "block_0" in w.path and "kernel" in w.path)


def _keeper(tmp_path, model, with_optimizer: bool) -> CheckpointKeeper:
    objects = {"model": model}
    if with_optimizer:
        objects["optimizer"] = model.optimizer
    return CheckpointKeeper(RunPaths(str(tmp_path)), tf.train.Checkpoint(**objects), model.encoder)


def test_restore_brings_back_every_weight_and_keeps_only_the_best_epoch(tmp_path):
    saved = _model(seed=1)
    _keeper(tmp_path, saved, with_optimizer=True).save(cycle=1, epoch=2)
    _keeper(tmp_path, saved, with_optimizer=True).save(cycle=1, epoch=3)
    assert sorted(p.name for p in (tmp_path / "checkpoints" / "cycle_1").iterdir()) == ["epoch_3"]

    restored = _model(seed=2)
    assert not np.array_equal(_block_kernel(restored).numpy(), _block_kernel(saved).numpy())
    _keeper(tmp_path, restored, with_optimizer=True).restore(cycle=1, epoch=3)
    for ours, theirs in zip(restored.encoder.weights, saved.encoder.weights, strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy(), err_msg=ours.path)


def test_a_restore_that_misses_the_blocks_is_refused(tmp_path):
    """A model without an optimizer finds the embeddings in the checkpoint but not the blocks.

    Keras 3 sublayers reach the checkpoint only through the optimizer's variable list, so
    ``tf.train.Checkpoint.read`` into an uncompiled model reports every object it found as
    matched and leaves the attention blocks at their initial values; the value check is what
    notices. (This is how the distillation teacher once lost its blocks.)
    """
    _keeper(tmp_path, _model(seed=1), with_optimizer=True).save(cycle=1, epoch=1)
    teacher = _uncompiled_model(seed=2)
    keeper = CheckpointKeeper(
        RunPaths(str(tmp_path)), tf.train.Checkpoint(model=teacher), teacher.encoder
    )
    with pytest.raises(RunStateError, match="weights differ from the checkpoint"):
        keeper.restore(cycle=1, epoch=1)


def test_check_weights_stored_names_the_changed_weight(tmp_path):
    model = _model(seed=1)
    prefix = _keeper(tmp_path, model, with_optimizer=True).save(cycle=1, epoch=1)
    check_weights_stored(model.encoder, prefix)
    kernel = _block_kernel(model)
    kernel.assign(kernel + 1.0)
    with pytest.raises(AssertionError, match=kernel.path):
        check_weights_stored(model.encoder, prefix)


def test_a_missing_checkpoint_is_named(tmp_path):
    keeper = _keeper(tmp_path, _model(seed=1), with_optimizer=True)
    with pytest.raises(RunStateError, match="checkpoint of cycle 4 is missing"):
        keeper.restore(cycle=4, epoch=1)


def test_metrics_rows_from_before_ndcg_are_written_with_empty_cells(tmp_path):
    """A run resumed from a state written before NDCG (and the per-cycle CPU time and peak
    memory) existed keeps its old rows."""
    path = str(tmp_path / "metrics.csv")
    added = ("ndcg20", "ndcg10", "cpu_seconds", "peak_rss_gb")
    old = {name: 1 for name in METRIC_COLUMNS if name not in added}
    new = {**old, "cycle": 2, "ndcg20": 0.5, "ndcg10": 0.25, "cpu_seconds": 9.5,
           "peak_rss_gb": 1.25}
    write_metrics_csv(path, [old, new])
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(METRIC_COLUMNS)
    assert METRIC_COLUMNS[-len(added):] == added  # new columns go last: old readers keep theirs
    assert [rows[0][k] for k in added] == ["", "", "", ""]
    assert [rows[1][k] for k in added] == ["0.5", "0.25", "9.5", "1.25"]
