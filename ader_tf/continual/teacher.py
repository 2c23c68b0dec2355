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
        reuse: A teacher from an earlier call to refill. One teacher object while the item
            tables keep their size: a new object would retrace the training step that calls
            it. When the student's tables have grown, a new teacher of their size is made.

    Returns:
        The teacher (``reuse`` itself when its tables have the student's size), not trainable.
    """
    teacher = reuse
    if teacher is None or teacher.encoder.num_items != student.encoder.num_items:
        encoder = type(student.encoder).from_config(student.encoder.get_config())
        teacher = SessionRecommender(encoder)
        teacher.build_all()
        teacher.trainable = False
    teacher.encoder.set_weights(student.encoder.get_weights())
    teacher.set_max_item(max_item)
    return teacher
