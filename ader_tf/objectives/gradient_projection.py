"""A-GEM's projection: the step never raises the loss on replayed exemplars (to first order)."""

from __future__ import annotations

import tensorflow as tf

from ader_tf.objectives.base import Objective, StepInputs, Term


def _cross_replica_sum(tensors: list[tf.Tensor]) -> list[tf.Tensor]:
    """Sums each tensor over replicas (identity on one device)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return tensors
    return context.all_reduce(tf.distribute.ReduceOp.SUM, tensors)


def project(gradient: list[tf.Tensor], reference: list[tf.Tensor]) -> list[tf.Tensor]:
    """g - (g.r / r.r) r where g.r < 0, else g; dot products over all variables at once.

    Args:
        gradient: The loss gradient g, one tensor per variable.
        reference: The reference gradient r (on exemplars), same shapes.
    """
    dot = tf.add_n([tf.reduce_sum(g * r) for g, r in zip(gradient, reference, strict=True)])
    norm = tf.add_n([tf.reduce_sum(r * r) for r in reference])
    # divide_no_nan: an all-zero reference (no exemplar rows) leaves g unchanged.
    scale = tf.where(dot < 0.0, tf.math.divide_no_nan(dot, norm), 0.0)
    return [g - scale * r for g, r in zip(gradient, reference, strict=True)]


class GradientProjection(Objective):
    """A-GEM (Chaudhry et al., ICLR 2019): projects the gradient when it conflicts with the
    gradient of the mean cross-entropy on the batch's exemplar rows (`ref_loss`).

    The reference loss is not minimised; its gradient only constrains the update. Under
    tf.distribute both gradients are summed over replicas before the projection (the dot
    products are global), and each replica then applies 1/replicas of the projected gradient.
    """

    reference_names = ("ref_loss",)

    def terms(self, inputs: StepInputs) -> dict[str, Term]:
        return {}

    def reference_terms(self, inputs: StepInputs) -> dict[str, Term]:
        exemplar = inputs.is_exemplar
        return {"ref_loss": Term(tf.reduce_sum(inputs.row_ce * exemplar), tf.reduce_sum(exemplar))}

    def adjust_gradients(
        self, gradients: list[tf.Tensor], reference: list[tf.Tensor] | None
    ) -> list[tf.Tensor]:
        if reference is None:
            raise ValueError("GradientProjection needs the reference gradient, got None.")
        context = tf.distribute.get_replica_context()
        replicas = 1 if context is None else context.num_replicas_in_sync
        total = _cross_replica_sum(list(gradients))
        total_reference = _cross_replica_sum(list(reference))
        projected = project(total, total_reference)
        if replicas == 1:
            return projected
        return [g / float(replicas) for g in projected]
