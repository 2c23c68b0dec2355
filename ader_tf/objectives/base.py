"""The objective interface: named loss terms as local sums over global row counts."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the interface needs no TensorFlow (--help)
    import keras
    import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Term:
    """One loss term as this replica computes it.

    Attributes:
        total: The local sum of the term over this replica's rows (or the whole value of a
            term that does not depend on rows, such as a weight penalty).
        count: How many local rows `total` averages over; the training step sums the counts
            of all replicas and divides by that global count, so the replicas' shares add up
            to the single-device mean. None marks a row-free term that every replica computes
            in full: each replica then contributes 1/replicas of it.
        weight: Multiplies the mean (a Python float or a scalar variable); None means 1.
    """

    total: tf.Tensor
    count: tf.Tensor | None
    weight: Any = None


@dataclasses.dataclass(frozen=True)
class StepInputs:
    """What an objective sees of one batch: inputs, the student's forward pass, row masks.

    Attributes:
        model: The model being trained (a `SessionRecommender`): for extra forward passes
            and its trainable variables.
        item_ids: int32 [B, L] left-padded inputs.
        targets: int32 [B] target item ids (>= 1).
        is_exemplar: float32 [B], 1 for replayed exemplar rows, 0 for current-period rows.
        exemplar_index: int32 [B], an exemplar row's index in the exemplar set, -1 elsewhere.
        logits: float32 [B, max_item], the student's scores of items 1..max_item.
        row_ce: float32 [B], each row's cross-entropy on its own target.
        training: Whether this is a training step (dropout on).
    """

    model: Any
    item_ids: tf.Tensor
    targets: tf.Tensor
    is_exemplar: tf.Tensor
    exemplar_index: tf.Tensor
    logits: tf.Tensor
    row_ce: tf.Tensor
    training: bool

    @property
    def current(self) -> tf.Tensor:
        """float32 [B]: 1 for current-period rows."""
        return 1.0 - self.is_exemplar


class Objective:
    """A training loss made of named terms; subclasses implement `terms`.

    An objective is a plain Python object (not a Keras layer): what it holds (a teacher, a
    penalty's importance weights) is never part of the student's checkpoint. It owns one
    `keras.metrics.Mean` per term name, which the model reports during `fit`.
    """

    #: Names of the terms `terms` returns, in order; they name the metrics too.
    term_names: tuple[str, ...] = ()
    #: Names of the terms `reference_terms` returns (not minimised; see GradientProjection).
    reference_names: tuple[str, ...] = ()
    _metrics: list[keras.metrics.Metric] | None = None

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        """This replica's terms of the loss, keyed by `term_names`."""
        raise NotImplementedError

    def reference_terms(self, inputs: StepInputs) -> dict[str, Term]:
        """Terms whose gradient `adjust_gradients` receives; none by default."""
        return {}

    def adjust_gradients(
        self, gradients: list[tf.Tensor], reference: list[tf.Tensor] | None
    ) -> list[tf.Tensor]:
        """Changes this replica's gradients before they are applied; identity by default.

        Args:
            gradients: This replica's share of the gradient of the loss, per variable.
            reference: This replica's share of the gradient of the reference terms, or None
                when the objective has none.
        """
        return gradients

    def build_metrics(self) -> list[keras.metrics.Metric]:
        """One running mean per term (created once; call it under the model's strategy)."""
        if self._metrics is None:
            import keras  # imported here so that --help needs no TensorFlow

            self._metrics = [
                keras.metrics.Mean(name=name)
                for name in (*self.term_names, *self.reference_names)
            ]
        return self._metrics


class _Combined(Objective):
    """The sum of several objectives' terms; gradient changes apply in order."""

    def __init__(self, parts: Sequence[Objective]) -> None:
        names = [n for p in parts for n in p.term_names]
        references = [n for p in parts for n in p.reference_names]
        if len(set(names + references)) != len(names) + len(references):
            raise ValueError(f"objectives must have distinct term names, got {names + references}")
        self.parts = tuple(parts)
        self.term_names = tuple(names)
        self.reference_names = tuple(references)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        out: dict[str, Term] = {}
        for part in self.parts:
            out.update(part.terms(inputs))
        return out

    def reference_terms(self, inputs: StepInputs) -> dict[str, Term]:
        out: dict[str, Term] = {}
        for part in self.parts:
            out.update(part.reference_terms(inputs))
        return out

    def adjust_gradients(
        self, gradients: list[tf.Tensor], reference: list[tf.Tensor] | None
    ) -> list[tf.Tensor]:
        for part in self.parts:
            gradients = part.adjust_gradients(gradients, reference)
        return gradients


def combine(*parts: Objective) -> Objective:
    """One objective whose terms are those of `parts`, in order (the loss is their sum)."""
    if not parts:
        raise ValueError("`combine` needs at least one objective, got none.")
    return parts[0] if len(parts) == 1 else _Combined(parts)
