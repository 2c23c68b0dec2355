"""Asks an exported SavedModel for the next items of a session, in the click log's own ids.

    python -m ader_tf.recommend --model_dir=results/SHOP-ADER/saved_models/cycle_3 \\
        --session=214536502,214536500 --k=10

Needs TensorFlow only: the model and its id map are inside the SavedModel (signature
`recommend`, written for runs whose period files came with items.csv).
"""

from __future__ import annotations

import sys

from absl import app, flags

from ader_tf.quiet import quiet_tensorflow

FLAGS = flags.FLAGS


def recommend(model_dir: str, session: list[str], k: int) -> list[tuple[str, float]]:
    """The top ``k`` raw item ids after ``session`` (raw ids in click order), with scores.

    Raises:
        ValueError: the SavedModel has no `recommend` signature, or k exceeds its top-k.
    """
    import tensorflow as tf

    loaded = tf.saved_model.load(model_dir)
    if "recommend" not in loaded.signatures:
        raise ValueError(
            f"{model_dir}: no `recommend` signature; it is exported only for runs whose period "
            "files have items.csv (python -m preprocessing writes it)"
        )
    out = loaded.signatures["recommend"](item_ids=tf.constant([session], tf.string))
    items = [i.decode() for i in out["top_items"].numpy()[0]]
    scores = [float(s) for s in out["top_scores"].numpy()[0]]
    if k > len(items):
        raise ValueError(f"--k must be at most {len(items)} (the export's top-k), got {k}")
    return list(zip(items, scores, strict=True))[:k]


def main(argv: list[str]) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    session = [s.strip() for s in FLAGS.session.split(",") if s.strip()]
    if not session:
        raise app.UsageError("--session must name at least one item id")
    try:
        ranked = recommend(FLAGS.model_dir, session, FLAGS.k)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
