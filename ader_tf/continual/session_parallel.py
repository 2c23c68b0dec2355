"""GRU4Rec's own training: session-parallel steps on sampled scores.

Joins the session-parallel mini-batches and negative sampler (`ader_tf.data.session_parallel`)
with a `GRU4RecEncoder` and the step math of `ader_tf.models.session_parallel`. States are
carried between steps without back-propagation through time, as in the authors' code.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ader_tf.data.periods import Sessions
from ader_tf.data.session_parallel import PopularitySampler, session_parallel_batches
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import dense_gradient, make_optimizer
from ader_tf.models.session_parallel import LOSSES, negative_mask, reset_states, sampled_loss


class SessionParallelTrainer:
    """Trains a `GRU4RecEncoder` GRU4Rec's way: session-parallel steps on sampled scores.

    One compiled step per mini-batch (fixed batch size, so one trace): states of rows that
    start a session are zeroed, the encoder advances one click (dropout on), each active row
    scores its target against the in-batch targets and the shared samples, and the optimizer
    applies the gradient of sum of row losses / batch size. That divisor is the authors': the
    last, partly-filled steps weigh less. The new states are carried to the next step as
    values (no back-propagation through time). Gradients of the tables are made dense, as in
    `SessionRecommender` training.

    Args:
        encoder: The encoder to train (its variables are updated in place).
        optimizer: Keras optimizer (default: `make_optimizer()`, Adam).
        loss: One of `LOSSES` (default "bpr_max", the 2018 paper's).
        batch_size: Rows per step.
        n_sample: Extra negatives per step, shared by all rows (0: in-batch only).
        sample_alpha: Sampling exponent, see `PopularitySampler`.
        bpreg: BPR-max score regularisation.
        seed: Seed of the negative sampling and the optional session shuffling.
        items: Negatives are drawn from items 1..items (default: every row of the encoder's
            tables, which may hold spare rows for items not seen yet).

    Raises:
        ValueError: On an unknown loss or a non-positive batch size, negative n_sample/bpreg.
    """

    def __init__(
        self,
        encoder: GRU4RecEncoder,
        optimizer: keras.optimizers.Optimizer | None = None,
        loss: str = "bpr_max",
        batch_size: int = 32,
        n_sample: int = 2048,
        sample_alpha: float = 0.75,
        bpreg: float = 1.0,
        seed: int | None = None,
        items: int | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        if n_sample < 0:
            raise ValueError(f"`n_sample` must be >= 0, got {n_sample}.")
        if bpreg < 0:
            raise ValueError(f"`bpreg` must be >= 0, got {bpreg}.")
        self.encoder = encoder
        self.optimizer = optimizer or make_optimizer()
        self.loss = loss
        self.batch_size = int(batch_size)
        self.n_sample = int(n_sample)
        self.sample_alpha = float(sample_alpha)
        self.bpreg = float(bpreg)
        self.rng = np.random.default_rng(seed)
        self.items = encoder.num_items if items is None else int(items)
        if not self.optimizer.built:
            # Slots now, not inside the first trace.
            self.optimizer.build(encoder.trainable_variables)
        b, d = self.batch_size, encoder.hidden_units
        signature = [
            tf.TensorSpec([b], tf.int32, name="inputs"),
            tf.TensorSpec([b], tf.int32, name="targets"),
            tf.TensorSpec([b], tf.bool, name="reset"),
            tf.TensorSpec([b], tf.bool, name="active"),
            tf.TensorSpec([self.n_sample], tf.int32, name="samples"),
            [tf.TensorSpec([b, d], tf.float32) for _ in range(encoder.num_layers)],
        ]
        self.train_step = tf.function(self._train_step, input_signature=signature)

    def _train_step(
        self,
        inputs: tf.Tensor,
        targets: tf.Tensor,
        reset: tf.Tensor,
        active: tf.Tensor,
        samples: tf.Tensor,
        states: list[tf.Tensor],
    ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        """One update; returns (sum of row losses, rows counted, new states)."""
        states = reset_states(states, reset)
        candidates = tf.concat([targets, samples], axis=0)
        negatives = negative_mask(targets, candidates, active)
        counted = tf.cast(tf.logical_and(active, tf.reduce_any(negatives, axis=1)), tf.float32)
        variables = self.encoder.trainable_variables
        with tf.GradientTape() as tape:
            output, new_states = self.encoder.step(inputs, states, training=True)
            rows = tf.gather(self.encoder.item_embeddings, candidates)
            scores = tf.matmul(output, rows, transpose_b=True)
            row_loss = sampled_loss(self.loss, scores, negatives, self.bpreg) * counted
            total = tf.reduce_sum(row_loss)
            loss = total / float(self.batch_size)
        gradients = [dense_gradient(g) for g in tape.gradient(loss, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return total, tf.reduce_sum(counted), [tf.stop_gradient(s) for s in new_states]

    def train_epoch(
        self,
        sessions: Sessions,
        shuffle_sessions: bool = False,
        sampler: PopularitySampler | None = None,
        progress: bool = False,
    ) -> float:
        """One pass over `sessions`; returns the mean loss per (click, next click) example.

        Args:
            sessions: Training sessions in time order.
            shuffle_sessions: Permute the sessions first (not GRU4Rec's default).
            sampler: Negative sampler (default: popularity of this data's clicks).
            progress: Show a progress bar over the steps.
        """
        if self.n_sample and sampler is None:
            sampler = PopularitySampler.from_sessions(
                sessions, self.items, self.sample_alpha, self.rng
            )
        no_samples = np.zeros(0, np.int32)
        states = self.encoder.initial_state(self.batch_size)
        loss_sum, rows = 0.0, 0.0
        steps = session_parallel_batches(sessions, self.batch_size, self.rng, shuffle_sessions)
        pairs = int(np.maximum(sessions.lengths - 1, 0).sum())
        bar = tqdm(total=-(-pairs // self.batch_size), desc="Session-parallel epoch",
                   unit="step", leave=False, disable=not progress)
        for step in steps:
            bar.update(1)
            samples = sampler.sample(self.n_sample) if self.n_sample else no_samples
            total, counted, states = self.train_step(
                step.inputs, step.targets, step.reset, step.active, samples, states
            )
            loss_sum += float(total)
            rows += float(counted)
        bar.close()
        return loss_sum / rows if rows else math.nan
