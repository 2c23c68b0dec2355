"""Fisher-weighted screening of a frozen teacher: its weights that conflict with the new data
are dropped at random from the forward pass that gives the reference scores.

The conflict of a weight is the Fisher information of the old model on the new data, the
squared gradient of the old model's cross-entropy on the current batch, smoothed over
batches. A weight the new data would move hard holds knowledge the new period contradicts;
a weight it leaves alone holds knowledge compatible with it. Each step, every weight of the
teacher is dropped with a probability that grows with its conflict (inverted dropout: kept
weights are scaled by 1 / (1 - p)), and the teacher with those weights scores the batch.
The teacher's variables never change; the masked values live only in that forward pass.
"""

from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from ader_tf.objectives.base import StepInputs

# The drop probability is capped so that a kept weight's scale 1 / (1 - p) stays finite.
MAX_DROP = 0.99
# Added to the Fisher range in the min-max normalisation, so that a constant tensor gives 0.
_RANGE_EPSILON = 1e-8


def ema_fisher(
    previous: tf.Tensor, gradient: tf.Tensor, beta: float, decay: Any = 1.0
) -> tf.Tensor:
    """beta * decay * previous + (1 - beta) * gradient^2: the smoothed conflict of each weight.

    Args:
        previous: The smoothed Fisher information so far.
        gradient: This batch's gradient of the old model's mean cross-entropy.
        beta: Smoothing in [0, 1]: the share of the history kept.
        decay: Extra factor on the history (the per-epoch decay at an epoch's first step).
    """
    return beta * decay * previous + (1.0 - beta) * tf.square(gradient)


def drop_probabilities(fisher: tf.Tensor, max_p: float) -> tf.Tensor:
    """max_p times the Fisher information min-max normalised over its tensor, at most 0.99.

    Normalising per tensor makes the probabilities comparable across layers whose gradients
    differ in scale by orders of magnitude: each tensor's most conflicting weight gets max_p,
    its least conflicting one 0.
    """
    low = tf.reduce_min(fisher)
    scaled = (fisher - low) / (tf.reduce_max(fisher) - low + _RANGE_EPSILON)
    return tf.minimum(scaled * max_p, MAX_DROP)


def screening_mask(fisher: tf.Tensor, max_p: float, uniform: tf.Tensor) -> tf.Tensor:
    """The multiplicative mask of one tensor: 0 where dropped, 1 / (1 - p) where kept.

    Args:
        fisher: The tensor's smoothed Fisher information.
        max_p: The drop probability of the most conflicting weight.
        uniform: Draws in [0, 1) of the tensor's shape; a weight is kept where its draw
            exceeds its drop probability.
    """
    p = drop_probabilities(fisher, max_p)
    return tf.cast(uniform > p, fisher.dtype) / (1.0 - p)


class FisherScreening:
    """A frozen teacher and the smoothed Fisher information of its encoder's weights.

    `logits(inputs)` is one training step's screening: (1) the gradient of the teacher's
    mean cross-entropy on the batch's current rows, (2) the smoothed Fisher information
    updated with it (`ema_fisher`; the history also decays by `decay` once per epoch), (3)
    one mask per weight (`screening_mask`, drawn from a stateless seed of the cycle and the
    step, so a resumed run draws the same masks), (4) the teacher's scores with its weights
    times the masks. Outside training (`inputs.training` False) nothing is updated.

    Every weight of the teacher's encoder is screened: all of them are trainable in the
    student. The teacher scores the items its `max_item` says (the caller sets it).

    Args:
        teacher: The frozen previous model (a `SessionRecommender`), never updated here.
        max_p: Drop probability of each tensor's most conflicting weight, in [0, 1).
        ema_beta: Smoothing of the Fisher information over batches, in [0, 1].
        decay: Factor on the smoothed Fisher information at each epoch's end, in [0, 1].
    """

    def __init__(self, teacher: Any, max_p: float, ema_beta: float, decay: float) -> None:
        teacher.trainable = False
        self.teacher = teacher
        self.weights = list(teacher.encoder.weights)
        self.max_p = float(max_p)
        self.ema_beta = float(ema_beta)
        self.decay = float(decay)
        self.fisher = [
            tf.Variable(tf.zeros(w.shape, w.dtype), trainable=False) for w in self.weights
        ]
        self.step = tf.Variable(0, trainable=False, dtype=tf.int64)
        self.steps_per_epoch = tf.Variable(1, trainable=False, dtype=tf.int64)
        self.seed = tf.Variable(0, trainable=False, dtype=tf.int64)

    def start_cycle(self, seed: int, steps_per_epoch: int) -> None:
        """Clears the Fisher information and the step count: each cycle estimates afresh."""
        for fisher in self.fisher:
            fisher.assign(tf.zeros_like(fisher))
        self.step.assign(0)
        self.steps_per_epoch.assign(max(1, int(steps_per_epoch)))
        self.seed.assign(int(seed))

    def forward(self, item_ids: tf.Tensor, values: list[tf.Tensor]) -> tf.Tensor:
        """The teacher's logits with its encoder weights replaced by `values` (dropout off)."""
        with keras.StatelessScope(state_mapping=list(zip(self.weights, values, strict=True))):
            return self.teacher(item_ids, training=False)

    def gradients(self, inputs: StepInputs) -> list[tf.Tensor]:
        """Gradient of the teacher's mean cross-entropy on the current rows, per weight."""
        values = [tf.convert_to_tensor(w) for w in self.weights]
        current = inputs.current
        with tf.GradientTape() as tape:
            tape.watch(values)
            logits = self.forward(inputs.item_ids, values)
            row_ce = tf.nn.sparse_softmax_cross_entropy_with_logits(
                labels=inputs.targets - 1, logits=logits
            )
            loss = tf.math.divide_no_nan(tf.reduce_sum(row_ce * current), tf.reduce_sum(current))
        grads = tape.gradient(loss, values)
        return [tf.zeros_like(v) if g is None else tf.convert_to_tensor(g)
                for v, g in zip(values, grads, strict=True)]

    def update(self, gradients: list[tf.Tensor], step: tf.Tensor) -> None:
        """Folds one batch's gradients into the Fisher information at `step` of the cycle."""
        # Decaying at an epoch's first step equals decaying after the previous epoch's last:
        # nothing reads the Fisher information in between.
        epoch_start = tf.logical_and(step > 0, step % self.steps_per_epoch == 0)
        decay = tf.where(epoch_start, self.decay, 1.0)
        for fisher, gradient in zip(self.fisher, gradients, strict=True):
            fisher.assign(ema_fisher(fisher, gradient, self.ema_beta, decay))

    def masks(self, step: tf.Tensor) -> list[tf.Tensor]:
        """The masks of `step` of the cycle, one per weight, from the current Fisher."""
        seed = tf.stack([self.seed.read_value(), tf.cast(step, tf.int64)])
        out = []
        for index, fisher in enumerate(self.fisher):
            draw_seed = tf.random.experimental.stateless_fold_in(seed, index)
            uniform = tf.random.stateless_uniform(fisher.shape, draw_seed, dtype=fisher.dtype)
            out.append(screening_mask(fisher, self.max_p, uniform))
        return out

    def logits(self, inputs: StepInputs) -> tf.Tensor:
        """The screened teacher's logits [B, teacher.max_item] of the batch (no gradient)."""
        step = self.step.read_value()
        if inputs.training:
            self.update(self.gradients(inputs), step)
        values = [tf.convert_to_tensor(w) * m
                  for w, m in zip(self.weights, self.masks(step), strict=True)]
        logits = tf.stop_gradient(self.forward(inputs.item_ids, values))
        if inputs.training:
            self.step.assign_add(1)
        return logits
