"""Elastic weight consolidation (PROTOCOL 2.6): Fisher information and the quadratic penalty."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

# Per-example gradients of one vectorised chunk are held at once; this bounds their size.
_MAX_CHUNK_FLOATS = 2**26


@dataclasses.dataclass(frozen=True, eq=False)
class EWCState:
    """Diagonal Fisher information and the weights it was measured at, one per variable.

    Entries follow the order of the model's `trainable_variables`.

    Attributes:
        fisher: Mean squared per-example gradient of each variable.
        previous: The variable values when the Fisher information was computed.
        num_examples: How many examples the mean is over.
    """

    fisher: tuple[tf.Tensor, ...]
    previous: tuple[tf.Tensor, ...]
    num_examples: int

    def check_matches(self, variables: Sequence[Any]) -> None:
        """Raises ValueError unless `variables` have the shapes this state was computed for."""
        shapes = [tuple(v.shape) for v in variables]
        own = [tuple(f.shape) for f in self.fisher]
        if shapes != own:
            raise ValueError(f"EWC state is for variable shapes {own}, the model has {shapes}.")

    def penalty(self, variables: Sequence[Any], lambda_: tf.Tensor | float) -> tf.Tensor:
        """(lambda / 2) * sum over variables of sum(F * (theta - theta_prev)^2)."""
        total = tf.add_n(
            [
                tf.reduce_sum(f * tf.square(tf.convert_to_tensor(v) - p))
                for v, f, p in zip(variables, self.fisher, self.previous, strict=True)
            ]
        )
        return tf.cast(lambda_, total.dtype) / 2.0 * total

    def save(self, path: str) -> None:
        """Writes the state to a `.npz` file."""
        arrays = {f"fisher_{i}": np.asarray(f) for i, f in enumerate(self.fisher)}
        arrays.update({f"previous_{i}": np.asarray(p) for i, p in enumerate(self.previous)})
        np.savez(path, num_examples=self.num_examples, **arrays)

    @classmethod
    def load(cls, path: str, model: Any = None) -> EWCState:
        """Reads a state written by `save`; checks it against `model`'s variables if given."""
        with np.load(path) as data:
            count = sum(1 for key in data.files if key.startswith("fisher_"))
            state = cls(
                fisher=tuple(tf.constant(data[f"fisher_{i}"]) for i in range(count)),
                previous=tuple(tf.constant(data[f"previous_{i}"]) for i in range(count)),
                num_examples=int(data["num_examples"]),
            )
        if model is not None:
            state.check_matches(model.trainable_variables)
        return state


def compute_fisher(
    model: Any,
    item_ids: np.ndarray,
    targets: np.ndarray,
    batch_size: int = 16,
) -> EWCState:
    """Diagonal Fisher information of `model` on examples, as the reference's EWC computes it.

    F = mean over examples of the squared gradient of the example's cross-entropy (over items
    1..model.max_item, dropout off) with respect to every trainable variable. Per-example
    gradients come from one vectorised Jacobian per chunk of `batch_size` examples (not one
    gradient call per example as in the reference).

    Args:
        model: A `SessionRecommender`.
        item_ids: int [N, L] left-padded inputs.
        targets: int [N] target item ids (>= 1).
        batch_size: Examples per vectorised chunk, capped so that one chunk's per-example
            gradients hold at most 2**26 floats (256 MB): the item table dominates
            (43,137 x 150 floats per example, so chunks of 10 at DIGINETICA size).

    Returns:
        The Fisher information and the current variable values.

    Raises:
        ValueError: On empty or mismatched inputs or batch_size < 1.
    """
    item_ids = np.asarray(item_ids, dtype=np.int32)
    targets = np.asarray(targets, dtype=np.int32).reshape(-1)
    if item_ids.ndim != 2 or len(item_ids) != len(targets) or len(targets) == 0:
        raise ValueError(
            f"need item_ids [N, L] and targets [N] with N >= 1, got {item_ids.shape} and "
            f"{targets.shape}."
        )
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    variables = list(model.trainable_variables)
    num_parameters = sum(int(np.prod(v.shape)) for v in variables)
    batch_size = max(1, min(batch_size, _MAX_CHUNK_FLOATS // num_parameters))

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, None], tf.int32),
            tf.TensorSpec([None], tf.int32),
        ]
    )
    def squared_gradient_sums(ids: tf.Tensor, tgt: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            logits = model(ids, training=False)
            losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tgt - 1, logits=logits)
        jacobians = tape.jacobian(losses, variables, experimental_use_pfor=True)
        return [tf.reduce_sum(tf.square(j), axis=0) for j in jacobians]

    totals = [tf.zeros(v.shape, v.dtype) for v in variables]
    for start in range(0, len(targets), batch_size):
        sums = squared_gradient_sums(
            item_ids[start : start + batch_size], targets[start : start + batch_size]
        )
        totals = [t + s for t, s in zip(totals, sums, strict=True)]
    count = len(targets)
    return EWCState(
        fisher=tuple(t / count for t in totals),
        previous=tuple(tf.identity(tf.convert_to_tensor(v)) for v in variables),
        num_examples=count,
    )
