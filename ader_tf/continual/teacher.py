"""The frozen previous-cycle model that distillation methods learn from."""

from __future__ import annotations

from ader_tf.models.recommender import SessionRecommender


def frozen_teacher(
    student: SessionRecommender, max_item: int, reuse: SessionRecommender | None = None
) -> SessionRecommender:
    """A frozen copy of ``student``'s weights scoring items 1..``max_item``.

    The weights are copied, not read from a checkpoint: a checkpoint reaches the encoder's
    sublayers only through the optimizer's variable list, so a read into a model without
    that optimizer restores the embeddings and leaves the attention blocks at their initial
    values, without an error.

    Args:
        student: The model whose weights the teacher takes (its best epoch, restored).
        max_item: The items the teacher scores (those known when it was trained).
        reuse: A teacher from an earlier call to refill. One teacher object per run: a new
            object every cycle would retrace the training step that calls it, and keep the
            old graphs (with the tables they capture) alive.

    Returns:
        The teacher (``reuse`` itself when given), not trainable.
    """
    teacher = reuse
    if teacher is None:
        encoder = type(student.encoder).from_config(student.encoder.get_config())
        teacher = SessionRecommender(encoder)
        teacher.build_all()
        teacher.trainable = False
    teacher.encoder.set_weights(student.encoder.get_weights())
    teacher.set_max_item(max_item)
    return teacher
