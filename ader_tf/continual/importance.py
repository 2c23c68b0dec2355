"""Per-weight importance for penalty methods: EWC's Fisher information and MAS's sensitivity.

Both are means over examples of a per-example gradient statistic, computed with one
vectorised Jacobian per chunk of examples, and kept with the weights they were measured at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import tensorflow as tf

from ader_tf.io_utils import DamagedFileError, load_checked_npz, save_checked_npz
from ader_tf.models.growth import padded_rows

# Per-example gradients of one vectorised chunk are held at once; this bounds their size.
_MAX_CHUNK_FLOATS = 2**26
_FORMAT = "ader_tf.importance/1"


@dataclasses.dataclass(frozen=True, eq=False)
class ImportanceState:
    """Importance of each weight and the weights it was measured at, one per variable.

    Entries follow the order of the model's `trainable_variables`. The file keys keep the
    names of EWC's first format (`fisher_<i>`, `previous_<i>`), and a file written before its
    checksum was kept still loads, so earlier runs still resume.

    Attributes:
        importance: Per-weight importance (EWC: mean squared per-example gradient).
        anchor: The variable values when the importance was measured.
        num_examples: How many examples the mean is over.
    """

    importance: tuple[tf.Tensor, ...]
    anchor: tuple[tf.Tensor, ...]
    num_examples: int

    def check_matches(self, variables: Sequence[Any]) -> None:
        """Raises ValueError unless `variables` have the shapes this state was computed for."""
        shapes = [tuple(v.shape) for v in variables]
        own = [tuple(f.shape) for f in self.importance]
        if shapes != own:
            raise ValueError(f"importance is for variable shapes {own}, the model has {shapes}.")

    def fit_to(self, variables: Sequence[Any]) -> ImportanceState:
        """This state for `variables` whose item tables may have grown since it was measured.

        A grown table's new rows get importance zero (nothing was measured on them, so the
        penalty leaves them free) and the variable's current values as anchor.

        Raises:
            ValueError: If a shape differs other than by added rows.
        """
        importance, anchor = [], []
        for variable, imp, anc in zip(variables, self.importance, self.anchor, strict=True):
            if tuple(imp.shape) == tuple(variable.shape):
                importance.append(imp)
                anchor.append(anc)
                continue
            try:
                importance.append(tf.constant(padded_rows(imp, variable, "zeros")))
            except ValueError as e:
                raise ValueError(f"importance is for shape {tuple(imp.shape)}, the variable "
                                 f"has {tuple(variable.shape)}.") from e
            anchor.append(tf.constant(padded_rows(anc, variable, "initial")))
        return ImportanceState(tuple(importance), tuple(anchor), self.num_examples)

    def save(self, path: str) -> None:
        """Writes the state to a `.npz` file and its checksum to the `.json` beside it."""
        arrays = {f"fisher_{i}": np.asarray(f) for i, f in enumerate(self.importance)}
        arrays.update({f"previous_{i}": np.asarray(p) for i, p in enumerate(self.anchor)})
        arrays["num_examples"] = np.asarray(self.num_examples)
        save_checked_npz(path, arrays, {"format": _FORMAT})

    @classmethod
    def load(cls, path: str, model: Any = None) -> ImportanceState:
        """Reads a state written by `save`; checks it against `model`'s variables if given.

        A file without its checksum (written before checksums were kept) is read as it is.

        Raises:
            DamagedFileError: naming the file: damaged, not an importance state, or measured
                on other variable shapes than `model`'s.
        """
        data, _ = load_checked_npz(path, sidecar_required=False)
        count = sum(1 for key in data if key.startswith("fisher_"))
        names = ["num_examples"] + [f"{kind}_{i}" for kind in ("fisher", "previous")
                                    for i in range(count)]
        missing = [name for name in names if name not in data]
        if missing:
            raise DamagedFileError(path, f"not an importance state (lacks {missing[:3]})")
        state = cls(
            importance=tuple(tf.constant(data[f"fisher_{i}"]) for i in range(count)),
            anchor=tuple(tf.constant(data[f"previous_{i}"]) for i in range(count)),
            num_examples=int(data["num_examples"]),
        )
        if model is not None:
            try:
                state.check_matches(model.trainable_variables)
            except ValueError as e:
                raise DamagedFileError(path, str(e)) from e
        return state

    def accumulate(self, newer: ImportanceState) -> ImportanceState:
        """The sum of both importances, anchored at `newer`'s weights (MAS over cycles)."""
        return ImportanceState(
            importance=tuple(a + b for a, b in zip(self.importance, newer.importance, strict=True)),
            anchor=newer.anchor,
            num_examples=self.num_examples + newer.num_examples,
        )


def _mean_gradient_statistic(
    model: Any,
    item_ids: np.ndarray,
    targets: np.ndarray,
    batch_size: int,
    example_loss: Any,
    statistic: Any,
) -> ImportanceState:
    """Mean over examples of ``statistic(d example_loss / d theta)`` for every variable."""
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
    def statistic_sums(ids: tf.Tensor, tgt: tf.Tensor) -> list[tf.Tensor]:
        with tf.GradientTape() as tape:
            losses = example_loss(model(ids, training=False), tgt)
        jacobians = tape.jacobian(losses, variables, experimental_use_pfor=True)
        return [tf.reduce_sum(statistic(j), axis=0) for j in jacobians]

    totals = [tf.zeros(v.shape, v.dtype) for v in variables]
    for start in range(0, len(targets), batch_size):
        sums = statistic_sums(
            item_ids[start : start + batch_size], targets[start : start + batch_size]
        )
        totals = [t + s for t, s in zip(totals, sums, strict=True)]
    count = len(targets)
    return ImportanceState(
        importance=tuple(t / count for t in totals),
        anchor=tuple(tf.identity(tf.convert_to_tensor(v)) for v in variables),
        num_examples=count,
    )


def compute_fisher(
    model: Any,
    item_ids: np.ndarray,
    targets: np.ndarray,
    batch_size: int = 16,
) -> ImportanceState:
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
    return _mean_gradient_statistic(
        model, item_ids, targets, batch_size,
        lambda logits, tgt: tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tgt - 1, logits=logits
        ),
        tf.square,
    )


def compute_mas_importance(
    model: Any, item_ids: np.ndarray, batch_size: int = 16
) -> ImportanceState:
    """MAS importance (Aljundi et al., ECCV 2018) of every weight on unlabelled examples.

    Omega = mean over examples of |d ||f(x)||^2 / d theta|, where f(x) are the logits over items
    1..model.max_item (dropout off): how much each weight moves the model's output, whatever
    the target. The paper uses the squared L2 norm of the output, as here.

    Args:
        model: A `SessionRecommender`.
        item_ids: int [N, L] left-padded inputs.
        batch_size: Examples per vectorised chunk (capped as in `compute_fisher`).

    Returns:
        The importance and the current variable values.
    """
    item_ids = np.asarray(item_ids, dtype=np.int32)
    return _mean_gradient_statistic(
        model, item_ids, np.ones(len(item_ids), np.int32), batch_size,
        lambda logits, tgt: tf.reduce_sum(tf.square(logits), axis=1),
        tf.abs,
    )
