"""Session-kNN baselines: SKNN and its sequence-aware variant V-SKNN.

Ludewig & Jannach, "Evaluation of session-based recommendation algorithms" (arXiv 1803.09587);
the reference is the ``session-rec`` framework (``algorithms/knn/sknn.py`` and ``vsknn.py``).
This is a vectorised reimplementation: a batch of current sessions is scored with two or three
sparse matrix products (batch x items times items x sessions, then neighbours x items), with
sampling and top-k done on the flat sparse entries with numpy.

How it works for one current session ``s`` (items = its non-zero inputs):

1. Candidates: memory sessions sharing at least one item with ``s``; only the ``sample_size``
   most recent of them are kept (recency = position in the memory, later = more recent).
2. Similarity. SKNN: cosine of binary item vectors, ``|s & n| / sqrt(|s| |n|)`` (or Jaccard).
   V-SKNN: session-rec's ``vec``: the clicks of ``s`` get weights that grow towards the most
   recent click (``weighting``), and ``sim = sum of the weights of the items shared with n /
   |unique items of s|``.
3. The ``k`` most similar candidates with ``sim > 0`` are the neighbours; ties in ``sim`` go to
   the more recent session (session-rec leaves them to set iteration order).
4. ``score(i) = sum over neighbours n containing i of sim(s, n)``; V-SKNN multiplies each
   neighbour's ``sim`` by ``weighting_score(step)``, where ``step`` is how far back (1 = last
   click) the most recent click of ``s`` whose item is in ``n`` lies.

Choices that differ from session-rec, all documented where they are made:

- session-rec's ``cosine`` reads ``li / sqrt(la) * sqrt(lb)`` (an operator-precedence slip); we
  use the cosine the paper and the brief state, ``li / sqrt(la * lb)``.
- session-rec's ``linear`` decays are ``1 - 0.1 * (length - i) if i <= 10 else 0`` and
  ``1 - 0.1 * i if i <= 100 else 0``, which go negative (and zero the newest clicks of sessions
  longer than 10); we use the evident intent, clipped at zero.
- session-rec normalises the final scores by their maximum; that changes no rank, so we don't.
- V-SKNN always uses session-rec's ``vec`` similarity (vsknn.py ignores its ``similarity``
  argument as well); ``similarity`` only applies to SKNN.
- Items the memory has never seen still count in ``|s|``, in the click positions and in the
  session length, as in session-rec (its session item list holds every click).
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import scipy.sparse as sp

WEIGHTINGS = ("same", "linear", "div", "log", "quadratic")
SIMILARITIES = ("cosine", "jaccard")

# Float64 sums of distinct powers 2^0..2^51 are exact, so one product finds, for up to 52 click
# positions at a time, the most recent shared click (the highest power in the sum).
_POS_BITS = 52


# === What the model reads from its inputs ===


class SessionsLike(Protocol):
    """A memory of sessions: one flat item array and the length of each session.

    The data package's ``Sessions`` fits; the protocol is declared here so that the model
    needs nothing from the data code.

    Attributes:
        items: int [num_clicks] item ids (>= 1), sessions concatenated in time order.
        lengths: int [num_sessions] clicks of each session.
    """

    @property
    def items(self) -> np.ndarray: ...

    @property
    def lengths(self) -> np.ndarray: ...


class ExamplesLike(Protocol):
    """Current sessions and their next items; the data package's ``Examples`` fits.

    Attributes:
        inputs: int [N, L] current sessions, left-padded with 0.
        targets: int [N] the item that followed each session.
    """

    @property
    def inputs(self) -> np.ndarray: ...

    @property
    def targets(self) -> np.ndarray: ...


# === Position weights (session-rec vsknn.py) ===


def position_weights(position: np.ndarray, length: np.ndarray, weighting: str) -> np.ndarray:
    """Weight of a click at 1-based ``position`` in a session of ``length`` clicks.

    The most recent click (``position == length``) weighs most: div ``i/L``, quadratic
    ``(i/L)^2``, log ``1/log10(L - i + 1.7)``, linear ``max(0, 1 - 0.1 (L - i))``, same ``1``.
    """
    i = np.asarray(position, dtype=np.float64)
    n = np.asarray(length, dtype=np.float64)
    if weighting == "same":
        return np.ones(np.broadcast(i, n).shape)
    if weighting == "div":
        return i / n
    if weighting == "quadratic":
        return (i / n) ** 2
    if weighting == "log":
        return 1.0 / np.log10(n - i + 1.7)
    if weighting == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * (n - i))
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


def step_decay(step: np.ndarray, weighting: str) -> np.ndarray:
    """Decay of a neighbour's score when its most recent shared click is ``step`` clicks back.

    ``step = 1`` is the last click: div ``1/step``, quadratic ``1/step^2``, log
    ``1/log10(step + 1.7)``, linear ``max(0, 1 - 0.1 step)``, same ``1``.
    """
    s = np.asarray(step, dtype=np.float64)
    if weighting == "same":
        return np.ones_like(s)
    if weighting == "div":
        return 1.0 / s
    if weighting == "quadratic":
        return 1.0 / (s * s)
    if weighting == "log":
        return 1.0 / np.log10(s + 1.7)
    if weighting == "linear":
        return np.maximum(0.0, 1.0 - 0.1 * s)
    raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")


# === The model ===


class SessionKNN:
    """SKNN (``sequential=False``) or V-SKNN (``sequential=True``) over a memory of sessions.

    Args:
        k: number of neighbours (session-rec default 100).
        sample_size: only the ``sample_size`` most recent sessions sharing an item with the
            current session are candidates (session-rec's ``sampling='recent'``; 500 is sknn.py's
            default, vsknn.py's signature says 1000). ``None`` keeps all candidates
            (session-rec's ``sample_size=0``).
        sequential: False for SKNN, True for V-SKNN.
        weighting: V-SKNN's click weights in the current session; session-rec's default
            ``"div"`` (weight ``i / L`` for click ``i`` of ``L``).
        weighting_score: V-SKNN's decay of a neighbour's score by how far back its most recent
            shared click lies; session-rec's default ``"div"`` (``1 / step``).
        similarity: SKNN's similarity, ``"cosine"`` (default, as in the paper; sknn.py's
            default is ``"jaccard"``) or ``"jaccard"``; V-SKNN always uses session-rec's
            weighted overlap.

    Raises:
        ValueError: for a bad argument, quoting it.
    """

    def __init__(
        self,
        k: int = 100,
        sample_size: int | None = 500,
        sequential: bool = False,
        weighting: str = "div",
        weighting_score: str = "div",
        similarity: str = "cosine",
    ) -> None:
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if sample_size is not None and (
            not isinstance(sample_size, (int, np.integer))
            or isinstance(sample_size, bool)
            or sample_size < 1
        ):
            raise ValueError(f"sample_size must be an integer >= 1 or None, got {sample_size!r}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")
        if weighting_score not in WEIGHTINGS:
            raise ValueError(
                f"weighting_score must be one of {WEIGHTINGS}, got {weighting_score!r}"
            )
        if similarity not in SIMILARITIES:
            raise ValueError(f"similarity must be one of {SIMILARITIES}, got {similarity!r}")
        self.k = int(k)
        self.sample_size = None if sample_size is None else int(sample_size)
        self.sequential = bool(sequential)
        self.weighting = weighting
        self.weighting_score = weighting_score
        self.similarity = similarity
        self._memory: sp.csr_matrix | None = None
        self._postings: sp.csr_matrix | None = None
        self._session_sizes: np.ndarray | None = None

    def get_config(self) -> dict:
        return {
            "k": self.k, "sample_size": self.sample_size, "sequential": self.sequential,
            "weighting": self.weighting, "weighting_score": self.weighting_score,
            "similarity": self.similarity,
        }

    # --- Memory ---

    def fit(self, sessions: SessionsLike) -> SessionKNN:
        """Sets the memory of past sessions (time order: later = more recent); returns self."""
        return self.set_memory(sessions)

    def set_memory(self, sessions: SessionsLike) -> SessionKNN:
        """Builds the session x item binary matrix and the (truncated) item -> sessions index."""
        items = np.asarray(sessions.items, dtype=np.int64)
        if items.size and items.min() < 1:
            raise ValueError(f"memory item ids must be >= 1, got {int(items.min())}")
        lengths = np.asarray(sessions.lengths, dtype=np.int64)
        if lengths.ndim != 1 or lengths.sum() != items.size:
            raise ValueError(
                f"session lengths must be 1-D and sum to the {items.size} items, got "
                f"shape {lengths.shape} summing to {int(lengths.sum())}"
            )
        num_sessions = len(lengths)
        num_cols = int(items.max(initial=0)) + 1  # column 0 (padding) stays empty
        rows = np.repeat(np.arange(num_sessions), lengths)
        memory = sp.csr_matrix(
            (np.ones(len(items)), (rows, items)), shape=(num_sessions, num_cols)
        )
        memory.sum_duplicates()
        memory.data[:] = 1.0  # a session is the set of its items
        memory.sort_indices()
        self._memory = memory
        self._session_sizes = np.diff(memory.indptr).astype(np.float64)
        # Inverted index item -> sessions (CSR rows = items, columns in time order). With
        # sampling, keeping each item's `sample_size` most recent sessions is exact: a session
        # among the `sample_size` most recent candidates has fewer than `sample_size` more
        # recent sessions containing any of its shared items, so it survives every truncation,
        # and the product with the batch still counts all its shared items.
        postings = memory.T.tocsr()
        postings.sort_indices()
        if self.sample_size is not None:
            postings = _keep_last_per_row(postings, self.sample_size)
        self._postings = postings
        return self

    @property
    def num_sessions(self) -> int:
        return 0 if self._memory is None else int(self._memory.shape[0])

    # --- Scoring ---

    def scores(self, inputs: np.ndarray, max_item: int) -> np.ndarray:
        """Dense scores [B, max_item] of items 1..max_item (column j = item j+1), float64.

        Args:
            inputs: int [B, L] current sessions, 0 = padding (as ``Examples.inputs``).
            max_item: number of item columns.
        """
        sparse = self._sparse_scores(np.asarray(inputs))
        out = np.zeros((sparse.shape[0], max_item), dtype=np.float64)
        top = min(max_item + 1, sparse.shape[1])
        block = sparse[:, 1:top]
        if block.nnz:
            out[:, : top - 1] = block.toarray()
        return out

    def target_ranks(
        self, examples: ExamplesLike, max_item: int, batch_size: int = 512, seed: int = 0
    ) -> np.ndarray:
        """0-based rank of each target among items 1..max_item, in ``examples`` order.

        The rank counts the items scored strictly above the target, as
        ``ader_tf.evaluation.target_ranks`` does for neural models, plus a uniformly random
        share of the items scored exactly the same (ties broken at random, seeded). Ties are
        rare for float logits but common here: most items score 0, and items of the same
        neighbours score alike. Counting ties in the target's favour would make a target that
        no neighbour contains (score 0) a hit whenever fewer than 20 items score above 0.

        Args:
            examples: the inputs and targets to rank.
            max_item: items 1..max_item are ranked.
            batch_size: rows scored at once.
            seed: seed of the tie-breaking.
        """
        return break_ties(*self.rank_counts(examples, max_item, batch_size), seed=seed)

    def rank_counts(
        self, examples: ExamplesLike, max_item: int, batch_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """For each target, in ``examples`` order: how many items 1..max_item score strictly
        above it, and how many others score exactly as it does (what `target_ranks` breaks at
        random). Scores ``batch_size`` rows at a time.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        targets = np.asarray(examples.targets, dtype=np.int64)
        if len(targets) and (targets.min() < 1 or targets.max() > max_item):
            raise ValueError(
                f"targets must be in 1..max_item={max_item}, got "
                f"{int(targets.min())}..{int(targets.max())}"
            )
        above = np.zeros(len(targets), dtype=np.int64)
        ties = np.zeros(len(targets), dtype=np.int64)
        for lo in range(0, len(targets), batch_size):
            hi = min(lo + batch_size, len(targets))
            sc = self._sparse_scores(np.asarray(examples.inputs[lo:hi]))
            sc = sc[:, : max_item + 1] if sc.shape[1] > max_item + 1 else sc
            above[lo:hi], ties[lo:hi] = _ranks_from_sparse(sc, targets[lo:hi], max_item)
        return above, ties

    def _sparse_scores(self, inputs: np.ndarray) -> sp.csr_matrix:
        """Item scores as CSR [B, num_cols] (column = item id); absent entries are 0."""
        if self._memory is None:
            raise ValueError("SessionKNN has no memory; call fit(sessions) first")
        if inputs.ndim != 2:
            raise ValueError(f"inputs must be [B, L], got shape {inputs.shape}")
        batch = inputs.shape[0]
        query = _Query(inputs, self._memory.shape[1])
        hits = self._candidates(query)
        rows = np.repeat(np.arange(batch), np.diff(hits.indptr))
        cols = hits.indices.astype(np.int64)
        if self.sequential:
            sims, decay = self._sequential_similarity(query, rows, cols)
        else:
            sims = self._binary_similarity(query, hits.data, rows, cols)
            decay = None
        keep = sims > 0
        rows, cols, sims = rows[keep], cols[keep], sims[keep]
        decay = None if decay is None else decay[keep]
        # k most similar per row; ties go to the more recent (larger index) session.
        order = np.lexsort((-cols, -sims, rows))
        rank = np.arange(len(order)) - _row_starts(rows[order], batch)[rows[order]]
        chosen = order[rank < self.k]
        weights = sims[chosen] if decay is None else sims[chosen] * decay[chosen]
        neighbours = sp.csr_matrix(
            (weights, (rows[chosen], cols[chosen])), shape=(batch, self.num_sessions)
        )
        # Canonical (session-sorted) rows fix the summation order of the product below.
        neighbours.sort_indices()
        return neighbours @ self._memory

    def _candidates(self, query: _Query) -> sp.csr_matrix:
        """CSR [B, sessions]: per row, the ``sample_size`` most recent memory sessions sharing
        an item with it, valued with the number of shared items (exact, see ``set_memory``)."""
        hits = (query.binary @ self._postings).tocsr()
        hits.sort_indices()
        if self.sample_size is not None:
            hits = _keep_last_per_row(hits, self.sample_size)
        return hits

    def _binary_similarity(
        self, query: _Query, overlap: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        size_s = query.unique_counts[rows]
        size_n = self._session_sizes[cols]
        if self.similarity == "cosine":
            return overlap / np.sqrt(size_s * size_n)
        return overlap / (size_s + size_n - overlap)

    def _sequential_similarity(
        self, query: _Query, rows: np.ndarray, cols: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """V-SKNN: weighted overlap / |unique items of s|, and the decay of each candidate."""
        n_sessions = self.num_sessions
        keys = rows * n_sessions + cols
        click_weights = position_weights(
            query.position, query.length[query.row], self.weighting
        )
        weights = query.matrix(click_weights)
        weighted = (weights @ self._postings).tocsr()
        sims = _lookup(weighted, n_sessions, keys) / query.unique_counts[rows]
        # Step of the most recent shared click, 52 click positions per product.
        steps = np.zeros(len(keys), dtype=np.int64)
        step_of_entry = query.length[query.row] - query.position + 1
        for window in range(int((step_of_entry.max(initial=1) - 1) // _POS_BITS) + 1):
            in_window = (step_of_entry - 1) // _POS_BITS == window
            local = (step_of_entry - 1) % _POS_BITS  # 0 = most recent in the window
            values = np.where(in_window, np.ldexp(1.0, _POS_BITS - 1 - local), 0.0)
            found = _lookup((query.matrix(values) @ self._postings).tocsr(), n_sessions, keys)
            todo = (steps == 0) & (found > 0)
            _, exponent = np.frexp(found[todo])  # found = m 2^e, m in [0.5, 1): top bit e - 1
            steps[todo] = window * _POS_BITS + _POS_BITS - (exponent - 1)
        return sims, step_decay(steps, self.weighting_score)


class _Query:
    """The unique items of a batch of current sessions, with their last click position."""

    def __init__(self, inputs: np.ndarray, num_cols: int) -> None:
        batch, _ = inputs.shape
        nonzero = inputs != 0
        position_grid = np.cumsum(nonzero, axis=1)  # 1-based click position, padding ignored
        self.length = nonzero.sum(axis=1).astype(np.int64)
        r, c = np.nonzero(nonzero)
        items = inputs[r, c].astype(np.int64)
        positions = position_grid[r, c].astype(np.int64)
        # Keep each (row, item)'s last click, as session-rec's position map overwrites.
        key = r.astype(np.int64) * (int(items.max(initial=0)) + 1) + items
        order = np.lexsort((positions, key))
        last = np.ones(len(order), dtype=bool)
        last[:-1] = key[order][1:] != key[order][:-1]
        sel = order[last]
        r, items, positions = r[sel], items[sel], positions[sel]
        self.unique_counts = np.bincount(r, minlength=batch).astype(np.float64)
        seen = items < num_cols  # items the memory never saw match nothing
        self.row, self.item, self.position = r[seen], items[seen], positions[seen]
        self.shape = (batch, num_cols)
        self.binary = self.matrix(np.ones(len(self.row)))

    def matrix(self, values: np.ndarray) -> sp.csr_matrix:
        """CSR [B, num_cols] with ``values`` at the (row, item) entries, sorted by item."""
        m = sp.csr_matrix((values, (self.row, self.item)), shape=self.shape)
        m.sort_indices()
        return m


# === Sparse helpers ===


def _keep_last_per_row(m: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keeps the last ``n`` stored entries of each row of a CSR with sorted indices."""
    lengths = np.diff(m.indptr)
    if lengths.max(initial=0) <= n:
        return m
    pos_from_end = np.repeat(m.indptr[1:], lengths) - np.arange(m.nnz)  # 1 = last entry
    keep = pos_from_end <= n
    indptr = np.zeros_like(m.indptr)
    np.cumsum(np.minimum(lengths, n), out=indptr[1:])
    return sp.csr_matrix((m.data[keep], m.indices[keep], indptr), shape=m.shape)


def _row_starts(sorted_rows: np.ndarray, num_rows: int) -> np.ndarray:
    """Index of each row's first entry in an array of row ids sorted ascending."""
    return np.searchsorted(sorted_rows, np.arange(num_rows))


def _lookup(m: sp.csr_matrix, num_cols: int, keys: np.ndarray) -> np.ndarray:
    """Values of ``m`` at flat keys ``row * num_cols + col`` (0 where nothing is stored)."""
    m.sort_indices()
    rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
    stored = rows * num_cols + m.indices
    if not len(stored):
        return np.zeros(len(keys))
    at = np.minimum(np.searchsorted(stored, keys), len(stored) - 1)
    return np.where(stored[at] == keys, m.data[at], 0.0)


def break_ties(above: np.ndarray, ties: np.ndarray, seed: int = 0) -> np.ndarray:
    """0-based ranks: ``above`` plus a uniformly random share of ``ties`` (seeded), so a
    target tied with n other items takes each of the n + 1 places with equal chance."""
    return above + np.random.default_rng(seed).integers(0, ties + 1)


def _ranks_from_sparse(
    scores: sp.csr_matrix, targets: np.ndarray, max_item: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: items 1..max_item scored strictly above the target, and other items tied
    with it (scores >= 0; the columns not stored score 0)."""
    num_cols = scores.shape[1]
    known = targets < num_cols  # an item the memory never saw scores 0
    target_scores = np.zeros(len(targets))
    keys = np.flatnonzero(known) * num_cols + targets[known]
    target_scores[known] = _lookup(scores, num_cols, keys)
    batch = scores.shape[0]
    rows = np.repeat(np.arange(batch), np.diff(scores.indptr))
    in_range = (scores.indices >= 1) & (scores.indices <= max_item)
    positive = in_range & (scores.data > 0)
    above = np.bincount(rows[positive & (scores.data > target_scores[rows])], minlength=batch)
    equal = np.bincount(rows[positive & (scores.data == target_scores[rows])], minlength=batch)
    num_positive = np.bincount(rows[positive], minlength=batch)
    # A positive target ties with the other positives of its score; a zero-score target with
    # every item that scores 0 (stored zeros and absent columns alike).
    ties = np.where(target_scores > 0, equal - 1, max_item - num_positive - 1)
    return above.astype(np.int64), np.maximum(ties, 0).astype(np.int64)
