"""Ranking evaluation: MRR@K, Recall@K and NDCG@K over all known items."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ader_tf.data.examples import Examples
from ader_tf.data.pipeline import batch_count, evaluation_dataset, evaluation_order
from ader_tf.errors import AderError


@dataclasses.dataclass(frozen=True)
class Metrics:
    """The four numbers the paper reports and NDCG@20, NDCG@10, as fractions (not percent).

    NDCG is what later work on this protocol (e.g. SA-CAISR) reports besides them.
    """

    mrr20: float
    recall20: float
    mrr10: float
    recall10: float
    num_examples: int
    ndcg20: float
    ndcg10: float

    def log_line(self, epoch: int, mode: str) -> str:
        """The original's log line, so tools that read its Training_logs.txt read ours."""
        return (
            f"epoch:{epoch:d}, {mode} (MRR@20: {self.mrr20:.4f}, RECALL@20: {self.recall20:.4f}, "
            f"MRR@10: {self.mrr10:.4f}, RECALL@10: {self.recall10:.4f})"
        )

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def metrics_from_ranks(ranks: np.ndarray) -> Metrics:
    """Recall@K = share of rank < K; MRR@K = mean of 1/(rank+1) where rank < K, else 0;
    NDCG@K = mean of 1/log2(rank+2) where rank < K, else 0.

    Ranks are 0-based: the number of items scored above the target. With one relevant item
    per example the ideal DCG is 1, so NDCG is the DCG of the target alone.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    n = len(ranks)
    if n == 0:
        return Metrics(0.0, 0.0, 0.0, 0.0, 0, ndcg20=0.0, ndcg10=0.0)
    reciprocal = 1.0 / (ranks + 1.0)
    discount = 1.0 / np.log2(ranks + 2.0)

    def mrr(k: int) -> float:
        return float(np.where(ranks < k, reciprocal, 0.0).sum() / n)

    def recall(k: int) -> float:
        return float((ranks < k).sum() / n)

    def ndcg(k: int) -> float:
        return float(np.where(ranks < k, discount, 0.0).sum() / n)

    return Metrics(mrr(20), recall(20), mrr(10), recall(10), n, ndcg20=ndcg(20), ndcg10=ndcg(10))


class NonFiniteError(AderError, ArithmeticError):
    """A model output (scores, losses, session vectors) holds NaN or infinite values.

    Attributes:
        bad_rows: How many rows hold a non-finite value.
        total_rows: How many rows were checked.
        what: What the rows are ("scores", "losses", ...).
    """

    exit_code = 1  # the model diverged, as TrainingDivergedError

    def __init__(self, bad_rows: int, total_rows: int, what: str) -> None:
        self.bad_rows = bad_rows
        self.total_rows = total_rows
        self.what = what
        super().__init__(f"{bad_rows} of {total_rows} rows have non-finite {what}")


def require_finite(values: np.ndarray, what: str) -> np.ndarray:
    """Returns ``values`` [N, ...] unchanged; raises NonFiniteError if a row is not finite."""
    values = np.asarray(values)
    finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if not finite.all():
        raise NonFiniteError(int((~finite).sum()), len(values), what)
    return values


@tf.function(reduce_retracing=True)
def target_ranks(logits: tf.Tensor, targets: tf.Tensor) -> tf.Tensor:
    """Number of items scored strictly above each target (column j scores item j+1).

    A row whose scores are not all finite gets -1: NaN compares false, so counting would
    rank its target first.
    """
    target_scores = tf.gather(logits, targets - 1, axis=1, batch_dims=1)
    ranks = tf.reduce_sum(tf.cast(logits > target_scores[:, None], tf.int32), axis=1)
    finite = tf.reduce_all(tf.math.is_finite(logits), axis=1)
    return tf.where(finite, ranks, -1)


def apply_in_order(
    fn: Callable[[dict[str, tf.Tensor], tf.Tensor], tf.Tensor],
    examples: Examples,
    batch_size: int,
    desc: str | None,
) -> np.ndarray:
    """Applies ``fn(features, targets)`` to every example in one pass; rows in input order.

    Batches are length-sorted (little padding); results are put back in ``examples`` order.
    ``desc`` labels a progress bar; None shows none.
    """
    order = evaluation_order(examples)
    total = batch_count(len(examples), batch_size)
    batches = evaluation_dataset(examples, batch_size)
    outputs = [
        np.asarray(fn(features, targets))
        for features, targets in tqdm(batches, total=total, desc=desc, leave=False, unit="b",
                                         disable=desc is None)
    ]
    stacked = np.concatenate(outputs) if outputs else np.zeros((0,))
    result = np.empty_like(stacked)
    result[order] = stacked
    return result


def evaluate_ranks(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    examples: Examples,
    batch_size: int,
    desc: str | None = "Evaluating",
) -> np.ndarray:
    """Ranks of every example's target, in the order of ``examples``.

    Args:
        logits_fn: maps ``item_ids`` [B, L] to logits over items 1..max_item (dropout off).
        examples: what to rank.
        batch_size: rows per forward pass (another may round a score's last bits otherwise,
            which moves a rank only where two scores tie to those bits).
        desc: progress bar label (None: no bar).

    Raises:
        NonFiniteError: if the scores of some rows hold NaN or infinite values.
    """
    ranks = apply_in_order(
        lambda features, targets: target_ranks(logits_fn(features["item_ids"]), targets),
        examples, batch_size, desc,
    ).astype(np.int64)
    if (ranks < 0).any():
        raise NonFiniteError(int((ranks < 0).sum()), len(ranks), "scores")
    return ranks


def evaluate(
    logits_fn: Callable[[tf.Tensor], tf.Tensor],
    examples: Examples,
    batch_size: int,
    desc: str | None = "Evaluating",
) -> Metrics:
    """MRR/Recall/NDCG@10/20 of ``logits_fn`` on ``examples``.

    Raises:
        NonFiniteError: if the scores of some rows hold NaN or infinite values.
    """
    return metrics_from_ranks(evaluate_ranks(logits_fn, examples, batch_size, desc))
