"""DER++ (Buzzega et al., NeurIPS 2020): replay with stored scores and with labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ader_tf.continual.methods.base import CycleContext, Method, refuse_flags
from ader_tf.io_utils import DamagedFileError, load_checked_npz, save_checked_npz
from ader_tf.options import non_negative, positive
from ader_tf.search_space import FloatRange

# What needs TensorFlow is imported where it is used, so that --help needs none.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective

_FORMAT = "ader_tf.derpp_scores/1"
_ARRAYS = ("top_items", "top_scores", "num_scored")


class DERPP(Method):
    """Cross-entropy on the new period + `--derpp_alpha` x logit matching on the exemplars +
    `--derpp_beta` x cross-entropy of the exemplars on their targets.

    Each exemplar keeps the scores the model gave it in the cycle it was first kept (not the
    latest model's, as ADER's teacher gives): scores sampled along the training trajectory.
    Only its top `--derpp_top_k` scores are stored, the k-th bounding the rest (see
    `LogitMatching`): 30,000 exemplars x k = 100 take 24 MB (int32 item + float32 score),
    where full scores over DIGINETICA's 43,136 items would take 5.2 GB. Exemplars are chosen
    by `--selection` like ADER's (`--selection=reservoir` is the paper's sampling).
    """

    name = "derpp"
    keeps_exemplars = True
    replays_exemplars = True
    options = (
        non_negative("derpp_alpha", 0.5, "DER++: weight of the stored-score term."),
        non_negative("derpp_beta", 0.5, "DER++: weight of the exemplars' label term."),
        positive("derpp_top_k", 100, "DER++: scores stored per exemplar (the k-th bounds the "
                 "rest)."),
    )
    search_space = (FloatRange("derpp_alpha", 0.05, 5.0, log=True),
                    FloatRange("derpp_beta", 0.05, 5.0, log=True))

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.stored: dict[str, np.ndarray] | None = None

    @classmethod
    def check_config(cls, config: Any) -> None:
        refuse_flags(config, ("disable_distillation", "fix_lambda"),
                     "weighs its terms with --derpp_alpha and --derpp_beta")

    def weight(self, ctx: CycleContext) -> float:
        return 0.0 if ctx.previous is None else self.config.derpp_alpha

    def continual_objective(self, ctx: CycleContext) -> Objective:
        if self.stored is None or len(self.stored["top_items"]) != len(ctx.exemplars):
            raise ValueError(f"cycle {ctx.cycle}: the stored scores do not match the exemplars")
        from ader_tf.objectives import LogitMatching, Replay, combine

        matching = LogitMatching(
            self.stored["top_items"], self.stored["top_scores"], self.stored["num_scored"],
            self.config.derpp_alpha,
        )
        return combine(self.cross_entropy, matching, Replay(self.config.derpp_beta))

    def after_cycle(self, ctx: CycleContext) -> None:
        """Scores the exemplars new in this cycle; older ones keep their stored scores."""
        k = self.config.derpp_top_k
        if k > ctx.data.max_item:
            raise ValueError(
                f"--derpp_top_k ({k}) must not exceed the items known in cycle {ctx.cycle} "
                f"({ctx.data.max_item})"
            )
        origin = ctx.exemplar_origin
        n = len(ctx.exemplars)
        top_items = np.zeros((n, k), np.int32)
        top_scores = np.zeros((n, k), np.float32)
        num_scored = np.zeros(n, np.int32)
        old = origin >= 0
        if old.any():
            for key, array in (("top_items", top_items), ("top_scores", top_scores),
                               ("num_scored", num_scored)):
                array[old] = self.stored[key][origin[old]]
        new = np.flatnonzero(~old)
        if new.size:
            import tensorflow as tf

            from ader_tf.evaluation import apply_in_order, require_finite

            def top_k(features: dict, targets: Any) -> tf.Tensor:
                scores, items = tf.math.top_k(ctx.model.predict_logits(features["item_ids"]), k)
                return tf.concat([tf.cast(items, tf.float32), scores], axis=1)

            both = require_finite(
                apply_in_order(top_k, ctx.exemplars.subset(new), 512,
                               "Storing scores" if ctx.config.progress else None), "scores"
            )
            top_items[new] = both[:, :k].astype(np.int32)
            top_scores[new] = both[:, k:]
            num_scored[new] = ctx.data.max_item
        self.stored = {"top_items": top_items, "top_scores": top_scores, "num_scored": num_scored}
        save_checked_npz(ctx.state_path(ctx.cycle, "derpp"), self.stored, {"format": _FORMAT})

    def restore(self, ctx: CycleContext) -> None:
        """Reloads the stored scores (files written before checksums were kept load too).

        Raises:
            DamagedFileError: naming the file if it is damaged or does not fit the exemplars.
        """
        path = ctx.state_path(ctx.cycle, "derpp")
        data, _ = load_checked_npz(path, sidecar_required=False)
        missing = [key for key in _ARRAYS if key not in data]
        if missing:
            raise DamagedFileError(path, f"not DER++ stored scores (lacks {missing})")
        self.stored = {key: data[key] for key in _ARRAYS}
        if ctx.exemplars is not None and len(self.stored["top_items"]) != len(ctx.exemplars):
            raise DamagedFileError(path, f"stored scores for {len(self.stored['top_items'])} "
                                         f"exemplars, but {len(ctx.exemplars)} exemplars were kept")
