"""Asks an exported SavedModel for the next items of a session, in the click log's own ids.

    python -m ader_tf.recommend --model_dir=results/SHOP-ADER/saved_models/cycle_3 \\
        --session=214536502,214536500 --k=10

Needs TensorFlow only: the model and its id map are inside the SavedModel (signature
`recommend`). The ids are the click log's where the period files came with items.csv, else the
period files' own ("1", "2", ...).
"""

from __future__ import annotations

from absl import app, flags

from ader_tf.errors import AderError, one_line, print_error
from ader_tf.quiet import quiet_tensorflow

FLAGS = flags.FLAGS


class RecommendError(AderError, ValueError):
    """The folder holds no SavedModel with a `recommend` signature, or `k` exceeds its top-k."""


def recommend(model_dir: str, session: list[str], k: int) -> list[tuple[str, float]]:
    """The top ``k`` raw item ids after ``session`` (raw ids in click order), with scores.

    Raises:
        RecommendError: No SavedModel at `model_dir`, one without a `recommend` signature,
            or k exceeds its top-k.
    """
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(model_dir)
    except OSError as e:
        raise RecommendError(f"{model_dir}: not a SavedModel ({one_line(e)})") from e
    if "recommend" not in loaded.signatures:
        raise RecommendError(
            f"{model_dir}: no `recommend` signature (older versions exported it only where "
            "the period files came with items.csv)"
        )
    out = loaded.signatures["recommend"](item_ids=tf.constant([session], tf.string))
    items = [i.decode() for i in out["top_items"].numpy()[0]]
    scores = [float(s) for s in out["top_scores"].numpy()[0]]
    if k > len(items):
        raise RecommendError(f"--k must be at most {len(items)} (the export's top-k), got {k}")
    return list(zip(items, scores, strict=True))[:k]


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    session = [s.strip() for s in FLAGS.session.split(",") if s.strip()]
    if not session:
        raise app.UsageError(f"--session must name at least one item id, got {FLAGS.session!r}")
    try:
        ranked = recommend(FLAGS.model_dir, session, FLAGS.k)
    except AderError as e:
        return print_error(e)
    for rank, (item, score) in enumerate(ranked, 1):
        print(f"{rank:>3}  {item}  {score:.4f}")
    return 0


if __name__ == "__main__":
    quiet_tensorflow()
    flags.DEFINE_string("model_dir", None, "An exported SavedModel (saved_models/cycle_<t>).")
    flags.DEFINE_string("session", None, "The session's raw item ids in click order, "
                        "comma-separated.")
    flags.DEFINE_integer("k", 10, "How many items to print.")
    flags.mark_flags_as_required(["model_dir", "session"])
    app.run(main)
