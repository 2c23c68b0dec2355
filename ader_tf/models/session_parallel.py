"""GRU4Rec's own training: session-parallel mini-batches, sampled output and ranking losses.

Hidasi et al. 2016 (arXiv 1511.06939) and Hidasi & Karatzoglou 2018, "Recurrent neural
networks with top-k gains for session-based recommendations" (arXiv 1706.03847), following
the authors' code (github.com/hidasib/GRU4Rec, GRU4Rec_PyTorch_Official) where the papers
leave a choice open:

- Each of the B rows of a mini-batch follows one session click by click; when its session
  ends the next unused session takes the row and the row's hidden state is zeroed. States are
  carried between steps without back-propagation through time.
- Sessions enter the rows in the order given (time order); shuffling is an option, off by
  default, as the published time-ordered training.
- The scores of a step are computed only for the batch's targets (in-batch negatives) plus
  `n_sample` items drawn, shared by all rows, with probability proportional to
  support^`sample_alpha`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import NamedTuple

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from ader_tf.data.periods import Sessions
from ader_tf.models.gru4rec import GRU4RecEncoder
from ader_tf.models.recommender import dense_gradient, make_optimizer

LOSSES = ("bpr", "top1", "bpr_max", "top1_max", "cross_entropy")

# Fill for excluded columns: exp() of it is exactly 0 in float32 and it stays finite, so a
# row without any negative gives no NaN (its loss is dropped afterwards).
_EXCLUDED = -1e9


# === Session-parallel mini-batches ===


class ParallelStep(NamedTuple):
    """One step of session-parallel training, every field [B].

    Attributes:
        inputs: int32 current click of each row (0 in inactive rows).
        targets: int32 next click of each row (0 in inactive rows).
        reset: bool, the row starts a new session at this step: zero its state before it.
        active: bool, the row holds a session. Rows whose sessions have run out near the end
            of the data stay in the batch (fixed shapes) with active False.
    """

    inputs: np.ndarray
    targets: np.ndarray
    reset: np.ndarray
    active: np.ndarray


def num_short_sessions(sessions: Sessions) -> int:
    """Number of sessions with fewer than 2 clicks: they give no training step."""
    return int(np.count_nonzero(sessions.lengths < 2))


def session_parallel_batches(
    sessions: Sessions,
    batch_size: int,
    rng: np.random.Generator | None = None,
    shuffle_sessions: bool = False,
) -> Iterator[ParallelStep]:
    """Yields GRU4Rec's session-parallel steps over `sessions`.

    At the start, rows 0..B-1 take the first B sessions. At each step every active row
    predicts its session's next click from the current one. A row whose session has no further
    target takes the next unused session (rows in increasing order); once none is left the row
    becomes inactive. Iteration ends when no row is active. Sessions of length < 2 are skipped
    (`num_short_sessions` counts them).

    Args:
        sessions: The sessions, in the order they should enter the rows (time order).
        batch_size: Number of rows B.
        rng: Generator for `shuffle_sessions` (default: a fresh unseeded one).
        shuffle_sessions: Permute the sessions first. GRU4Rec's time-ordered training does not.

    Yields:
        `ParallelStep`s; every (click, next click) pair of every session appears exactly once.

    Raises:
        ValueError: If `batch_size` < 1.
    """
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    lengths = sessions.lengths
    starts = sessions.offsets[:-1]
    items = np.asarray(sessions.items, np.int32)
    order = np.flatnonzero(lengths >= 2)
    if shuffle_sessions:
        order = (rng or np.random.default_rng()).permutation(order)

    row_session = np.full(batch_size, -1, np.int64)
    taken = min(batch_size, len(order))
    row_session[:taken] = order[:taken]
    position = np.zeros(batch_size, np.int64)  # index of the current click in its session
    active = row_session >= 0
    reset = active.copy()
    while active.any():
        current = np.where(active, starts[row_session] + position, 0)
        yield ParallelStep(
            inputs=np.where(active, items[current], 0).astype(np.int32),
            targets=np.where(active, items[np.minimum(current + 1, len(items) - 1)], 0).astype(
                np.int32
            ),
            reset=reset,
            active=active.copy(),
        )
        position += 1
        ended = np.flatnonzero(active & (position + 1 >= lengths[row_session]))
        reset = np.zeros(batch_size, bool)
        fresh = order[taken : taken + len(ended)]
        taken += len(fresh)
        refilled, emptied = ended[: len(fresh)], ended[len(fresh) :]
        row_session[refilled] = fresh
        position[refilled] = 0
        reset[refilled] = True
        active[emptied] = False


def reset_states(states: list[tf.Tensor], reset: tf.Tensor) -> list[tf.Tensor]:
    """Zeroes the rows of each state [B, d] where `reset` [B] is true."""
    keep = tf.cast(tf.logical_not(tf.cast(reset, tf.bool)), states[0].dtype)[:, None]
    return [state * keep for state in states]


# === Negative sampling ===


class PopularitySampler:
    """Draws items with probability proportional to count^alpha (GRU4Rec's `sample_alpha`).

    alpha = 1 samples by popularity, alpha = 0 uniformly. Items with count 0 (padding id 0,
    items absent from the training data) are never drawn, also for alpha = 0, as the authors'
    code samples only items of its training data.

    Args:
        item_counts: [num_items + 1] clicks per item id (index 0 = padding).
        alpha: The exponent (GRU4Rec's default 0.75).
        rng: Random generator (default: a fresh unseeded one).

    Raises:
        ValueError: On a negative alpha or count, or when no item has a positive count.
    """

    def __init__(
        self,
        item_counts: np.ndarray,
        alpha: float = 0.75,
        rng: np.random.Generator | None = None,
    ) -> None:
        counts = np.asarray(item_counts, np.float64)
        if alpha < 0:
            raise ValueError(f"`alpha` must be >= 0, got {alpha}.")
        if counts.ndim != 1 or (counts < 0).any() or not (counts > 0).any():
            raise ValueError(
                f"`item_counts` must be a 1-D array of counts >= 0 with one > 0, got {counts!r}."
            )
        self.alpha = float(alpha)
        self.rng = rng or np.random.default_rng()
        weights = np.where(counts > 0, counts**self.alpha, 0.0)
        self.probabilities = weights / weights.sum()
        self._cdf = np.cumsum(self.probabilities)
        self._cdf[-1] = 1.0  # searchsorted below never runs past the end

    @classmethod
    def from_sessions(
        cls,
        sessions: Sessions,
        num_items: int,
        alpha: float = 0.75,
        rng: np.random.Generator | None = None,
    ) -> PopularitySampler:
        """A sampler over the clicks of `sessions` (item ids 1..num_items)."""
        counts = np.bincount(np.asarray(sessions.items, np.int64), minlength=num_items + 1)
        return cls(counts[: num_items + 1], alpha, rng)

    def sample(self, size: int) -> np.ndarray:
        """`size` item ids (int32), drawn independently with replacement."""
        ids = np.searchsorted(self._cdf, self.rng.random(size), side="right")
        return ids.astype(np.int32)


def candidate_items(targets: np.ndarray, samples: np.ndarray) -> np.ndarray:
    """The scored items of a step: the B targets (column j is row j's positive) + samples."""
    return np.concatenate([targets, samples]).astype(np.int32)


def negative_mask(targets: tf.Tensor, candidates: tf.Tensor, active: tf.Tensor) -> tf.Tensor:
    """Which candidate columns are negatives of each row, bool [B, B + S].

    A column is excluded for row i when it holds row i's own target item (the diagonal, and
    also another row's identical target or a sample that hit it: a positive is never pushed
    down as a negative) or when it is the target column of an inactive row.

    Args:
        targets: [B] target item of each row.
        candidates: [B + S] scored items, the targets first (`candidate_items`).
        active: [B] bool, rows holding a session.
    """
    targets = tf.cast(targets, tf.int32)
    candidates = tf.cast(candidates, tf.int32)
    extra = tf.shape(candidates)[0] - tf.shape(targets)[0]
    column_valid = tf.concat([tf.cast(active, tf.bool), tf.ones([extra], tf.bool)], axis=0)
    return tf.logical_and(
        tf.not_equal(candidates[None, :], targets[:, None]), column_valid[None, :]
    )


# === Losses ===


def sampled_loss(
    loss: str,
    scores: tf.Tensor,
    negatives: tf.Tensor | None = None,
    bpreg: float = 1.0,
) -> tf.Tensor:
    """Per-row ranking loss [B] over sampled scores [B, N] whose diagonal is the positive.

    With r_i the row's positive score, r_j its negatives (columns where `negatives` is true,
    n of them) and s_j = softmax of the r_j over the negatives only:

    - "bpr": -(1/n) sum_j log sigmoid(r_i - r_j)                        (2016 paper)
    - "top1": (1/n) sum_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)]          (2016 paper)
    - "bpr_max": -log sum_j s_j sigmoid(r_i - r_j) + bpreg sum_j s_j r_j^2   (2018 paper)
    - "top1_max": sum_j s_j [sigmoid(r_j - r_i) + sigmoid(r_j^2)]         (2018 paper)
    - "cross_entropy": -log softmax(r)_i over the positive and its negatives.

    The authors' `bpr` and `top1` average over all N columns, the positive's own (constant)
    term included; here the mean is over the negatives, as the papers write it. A row without
    any negative gets 0.

    Args:
        loss: One of `LOSSES`.
        scores: [B, N] scores, N >= B, column i of row i its positive.
        negatives: [B, N] bool mask of negatives (default: every off-diagonal column).
        bpreg: Weight of BPR-max's score regularisation (the authors' default 1.0).

    Raises:
        ValueError: On an unknown loss name.
    """
    if loss not in LOSSES:
        raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
    shape = tf.shape(scores)
    diagonal = tf.cast(tf.eye(shape[0], shape[1]), tf.bool)
    if negatives is None:
        negatives = tf.logical_not(diagonal)
    negatives = tf.logical_and(tf.cast(negatives, tf.bool), tf.logical_not(diagonal))
    weights = tf.cast(negatives, scores.dtype)
    count = tf.reduce_sum(weights, axis=1)
    positive = tf.linalg.diag_part(scores)[:, None]  # [B, 1]

    if loss == "cross_entropy":
        logits = tf.where(tf.logical_or(negatives, diagonal), scores, _EXCLUDED)
        row = -tf.linalg.diag_part(tf.nn.log_softmax(logits, axis=1))
    elif loss == "bpr":
        row = -tf.math.divide_no_nan(
            tf.reduce_sum(tf.math.log_sigmoid(positive - scores) * weights, 1), count
        )
    elif loss == "top1":
        terms = tf.sigmoid(scores - positive) + tf.sigmoid(tf.square(scores))
        row = tf.math.divide_no_nan(tf.reduce_sum(terms * weights, 1), count)
    else:
        log_softmax = tf.nn.log_softmax(tf.where(negatives, scores, _EXCLUDED), axis=1)
        softmax = tf.exp(log_softmax) * weights
        if loss == "bpr_max":
            # log sum_j s_j sigmoid(.) as a logsumexp: no underflow for large score gaps.
            log_terms = tf.where(
                negatives, log_softmax + tf.math.log_sigmoid(positive - scores), _EXCLUDED
            )
            row = -tf.reduce_logsumexp(log_terms, axis=1) + bpreg * tf.reduce_sum(
                softmax * tf.square(scores), axis=1
            )
        else:
            terms = tf.sigmoid(scores - positive) + tf.sigmoid(tf.square(scores))
            row = tf.reduce_sum(softmax * terms, axis=1)
    return tf.where(count > 0, row, tf.zeros_like(row))


# === Training ===


class SessionParallelTrainer:
    """Trains a `GRU4RecEncoder` GRU4Rec's way: session-parallel steps on sampled scores.

    One compiled step per mini-batch (fixed batch size, so one trace): states of rows that
    start a session are zeroed, the encoder advances one click (dropout on), each active row
    scores its target against the in-batch targets and the shared samples, and the optimizer
    applies the gradient of sum of row losses / batch size. That divisor is the authors': the
    last, partly-filled steps weigh less. The new states are carried to the next step as
    values (no back-propagation through time). Gradients of the tables are made dense, as in
    `SessionRecommender` training.

    Args:
        encoder: The encoder to train (its variables are updated in place).
        optimizer: Keras optimizer (default: `make_optimizer()`, Adam).
        loss: One of `LOSSES` (default "bpr_max", the 2018 paper's).
        batch_size: Rows per step.
        n_sample: Extra negatives per step, shared by all rows (0: in-batch only).
        sample_alpha: Sampling exponent, see `PopularitySampler`.
        bpreg: BPR-max score regularisation.
        seed: Seed of the negative sampling and the optional session shuffling.

    Raises:
        ValueError: On an unknown loss or a non-positive batch size, negative n_sample/bpreg.
    """

    def __init__(
        self,
        encoder: GRU4RecEncoder,
        optimizer: keras.optimizers.Optimizer | None = None,
        loss: str = "bpr_max",
        batch_size: int = 32,
        n_sample: int = 2048,
        sample_alpha: float = 0.75,
        bpreg: float = 1.0,
        seed: int | None = None,
    ) -> None:
        if loss not in LOSSES:
            raise ValueError(f"`loss` must be one of {LOSSES}, got {loss!r}.")
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        if n_sample < 0:
            raise ValueError(f"`n_sample` must be >= 0, got {n_sample}.")
        if bpreg < 0:
            raise ValueError(f"`bpreg` must be >= 0, got {bpreg}.")
        self.encoder = encoder
        self.optimizer = optimizer or make_optimizer()
        self.loss = loss
        self.batch_size = int(batch_size)
        self.n_sample = int(n_sample)
        self.sample_alpha = float(sample_alpha)
        self.bpreg = float(bpreg)
        self.rng = np.random.default_rng(seed)
        if not self.optimizer.built:
            # Slots now, not inside the first trace.
            self.optimizer.build(encoder.trainable_variables)
        b, d = self.batch_size, encoder.hidden_units
        signature = [
            tf.TensorSpec([b], tf.int32, name="inputs"),
            tf.TensorSpec([b], tf.int32, name="targets"),
            tf.TensorSpec([b], tf.bool, name="reset"),
            tf.TensorSpec([b], tf.bool, name="active"),
            tf.TensorSpec([self.n_sample], tf.int32, name="samples"),
            [tf.TensorSpec([b, d], tf.float32) for _ in range(encoder.num_layers)],
        ]
        self.train_step = tf.function(self._train_step, input_signature=signature)

    def _train_step(
        self,
        inputs: tf.Tensor,
        targets: tf.Tensor,
        reset: tf.Tensor,
        active: tf.Tensor,
        samples: tf.Tensor,
        states: list[tf.Tensor],
    ) -> tuple[tf.Tensor, tf.Tensor, list[tf.Tensor]]:
        """One update; returns (sum of row losses, rows counted, new states)."""
        states = reset_states(states, reset)
        candidates = tf.concat([targets, samples], axis=0)
        negatives = negative_mask(targets, candidates, active)
        counted = tf.cast(tf.logical_and(active, tf.reduce_any(negatives, axis=1)), tf.float32)
        variables = self.encoder.trainable_variables
        with tf.GradientTape() as tape:
            output, new_states = self.encoder.step(inputs, states, training=True)
            rows = tf.gather(self.encoder.item_embeddings, candidates)
            scores = tf.matmul(output, rows, transpose_b=True)
            row_loss = sampled_loss(self.loss, scores, negatives, self.bpreg) * counted
            total = tf.reduce_sum(row_loss)
            loss = total / float(self.batch_size)
        gradients = [dense_gradient(g) for g in tape.gradient(loss, variables)]
        self.optimizer.apply_gradients(zip(gradients, variables))
        return total, tf.reduce_sum(counted), [tf.stop_gradient(s) for s in new_states]

    def train_epoch(
        self,
        sessions: Sessions,
        shuffle_sessions: bool = False,
        sampler: PopularitySampler | None = None,
        progress: bool = False,
    ) -> float:
        """One pass over `sessions`; returns the mean loss per (click, next click) example.

        Args:
            sessions: Training sessions in time order.
            shuffle_sessions: Permute the sessions first (not GRU4Rec's default).
            sampler: Negative sampler (default: popularity of this data's clicks).
            progress: Show a progress bar over the steps.
        """
        if self.n_sample and sampler is None:
            sampler = PopularitySampler.from_sessions(
                sessions, self.encoder.num_items, self.sample_alpha, self.rng
            )
        no_samples = np.zeros(0, np.int32)
        states = self.encoder.initial_state(self.batch_size)
        loss_sum, rows = 0.0, 0.0
        steps = session_parallel_batches(sessions, self.batch_size, self.rng, shuffle_sessions)
        pairs = int(np.maximum(sessions.lengths - 1, 0).sum())
        bar = tqdm(total=-(-pairs // self.batch_size), desc="Session-parallel epoch",
                   unit="step", leave=False, disable=not progress)
        for step in steps:
            bar.update(1)
            samples = sampler.sample(self.n_sample) if self.n_sample else no_samples
            total, counted, states = self.train_step(
                step.inputs, step.targets, step.reset, step.active, samples, states
            )
            loss_sum += float(total)
            rows += float(counted)
        bar.close()
        return loss_sum / rows if rows else math.nan
