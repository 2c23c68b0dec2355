"""SKNN / V-SKNN: hand-computed toy cases and agreement with a slow pure-Python reference."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

from ader_tf.data.examples import Examples
from ader_tf.data.periods import Sessions
from ader_tf.models.sknn import SessionKNN, break_ties, position_weights, step_decay

# Memory in time order (index = recency). Items 1..9.
TOY = [[1, 2, 3], [2, 4], [1, 2, 5, 6], [3, 7], [8, 9]]


def as_sessions(lists: list[list[int]]) -> Sessions:
    lengths = np.array([len(x) for x in lists], dtype=np.int64)
    offsets = np.zeros(len(lists) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    items = np.array([i for x in lists for i in x], dtype=np.int32)
    return Sessions(items=items, offsets=offsets)


def padded(rows: list[list[int]], maxlen: int) -> np.ndarray:
    out = np.zeros((len(rows), maxlen), dtype=np.int32)
    for r, row in enumerate(rows):
        row = row[-maxlen:]
        out[r, maxlen - len(row):] = row
    return out


def reference_scores(
    memory: list[list[int]], current: list[int], max_item: int, k: int,
    sample_size: int | None, sequential: bool, weighting: str = "div",
    weighting_score: str = "div", similarity: str = "cosine",
) -> np.ndarray:
    """One session at a time, with sets and loops (sums in the order the sparse code uses)."""
    clicks = [int(x) for x in current if x != 0]
    length = len(clicks)
    s_items = set(clicks)
    sets = [set(m) for m in memory]
    candidates = [j for j, n in enumerate(sets) if n & s_items]
    if sample_size is not None:
        candidates = sorted(candidates, reverse=True)[:sample_size]
    sims, decays = {}, {}
    if sequential:
        w_all = position_weights(np.arange(1, length + 1), length, weighting)
        weight = {item: float(w_all[i]) for i, item in enumerate(clicks)}  # last click wins
    for j in candidates:
        shared = sets[j] & s_items
        if sequential:
            sims[j] = sum(weight[i] for i in sorted(shared)) / len(s_items)
            step = next(st for st, it in enumerate(reversed(clicks), 1) if it in sets[j])
            decays[j] = float(step_decay(np.array([step]), weighting_score)[0])
        elif similarity == "cosine":
            sims[j] = len(shared) / math.sqrt(len(s_items) * len(sets[j]))
        else:
            sims[j] = len(shared) / len(s_items | sets[j])
    ranked = sorted((j for j in sims if sims[j] > 0), key=lambda j: (-sims[j], -j))[:k]
    scores = np.zeros(max_item)
    for j in sorted(ranked):
        w = sims[j] * decays[j] if sequential else sims[j]
        for item in sorted(sets[j]):
            if item <= max_item:
                scores[item - 1] += w
    return scores


def reference_rank_bounds(scores: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Items strictly above each target, and other items tied with it."""
    above = np.array([(s > s[t - 1]).sum() for s, t in zip(scores, targets)])
    ties = np.array([(s == s[t - 1]).sum() - 1 for s, t in zip(scores, targets)])
    return above, ties


# === Hand-computed cases ===


def test_sknn_toy_scores_by_hand():
    # Current {1, 2}: candidates s0 (2 shared), s1 (1), s2 (2); cosine 2/sqrt(2*3), 1/sqrt(2*2),
    # 2/sqrt(2*4); k=2 keeps s0 and s2.
    knn = SessionKNN(k=2, sample_size=500).fit(as_sessions(TOY))
    got = knn.scores(padded([[1, 2]], 4), max_item=9)[0]
    a, c = 2 / math.sqrt(6), 2 / math.sqrt(8)
    expected = [a + c, a + c, a, 0, c, c, 0, 0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_sample_size_keeps_most_recent_candidates():
    # The 2 most recent candidates are s1 (1/2) and s2 (2/sqrt 8); s0 is left out.
    knn = SessionKNN(k=2, sample_size=2).fit(as_sessions(TOY))
    got = knn.scores(padded([[1, 2]], 4), max_item=9)[0]
    c = 2 / math.sqrt(8)
    np.testing.assert_allclose(got, [c, 0.5 + c, 0, 0.5, c, c, 0, 0, 0], rtol=1e-12)


def test_k_keeps_most_similar():
    knn = SessionKNN(k=1, sample_size=None).fit(as_sessions(TOY))
    got = knn.scores(padded([[1, 2]], 4), max_item=9)[0]
    a = 2 / math.sqrt(6)  # s0 is the most similar
    np.testing.assert_allclose(got, [a, a, a, 0, 0, 0, 0, 0, 0], rtol=1e-12)


def test_ties_go_to_the_more_recent_session():
    knn = SessionKNN(k=1).fit(as_sessions([[1, 2], [1, 3], [1, 4]]))
    got = knn.scores(padded([[1]], 2), max_item=4)[0]  # all three tie at 1/sqrt(2)
    np.testing.assert_allclose(got, [0.5**0.5, 0, 0, 0.5**0.5], rtol=1e-12)


def test_jaccard():
    knn = SessionKNN(k=1, similarity="jaccard").fit(as_sessions(TOY))
    got = knn.scores(padded([[1, 2]], 4), max_item=9)[0]
    # jaccard s0 = 2/3, s1 = 1/3, s2 = 2/4: s0 wins.
    np.testing.assert_allclose(got, [2 / 3, 2 / 3, 2 / 3, 0, 0, 0, 0, 0, 0], rtol=1e-12)


def test_position_weights_and_decay():
    np.testing.assert_allclose(position_weights(np.arange(1, 5), 4, "div"), [.25, .5, .75, 1])
    np.testing.assert_allclose(
        position_weights(np.arange(1, 5), 4, "quadratic"), [1 / 16, 1 / 4, 9 / 16, 1]
    )
    lin = position_weights(np.arange(1, 13), 12, "linear")
    np.testing.assert_allclose(lin[[0, 1, 2, 11]], [0, 0, 0.1, 1], atol=1e-12)
    np.testing.assert_allclose(position_weights(3, 3, "log"), 1 / math.log10(1.7))
    np.testing.assert_allclose(step_decay(np.array([1, 2, 4]), "div"), [1, .5, .25])
    np.testing.assert_allclose(step_decay(np.array([1, 2]), "quadratic"), [1, .25])
    np.testing.assert_allclose(step_decay(np.array([1, 12]), "linear"), [.9, 0], atol=1e-12)


def test_vsknn_toy_scores_by_hand():
    # Current clicks [3, 1, 2]: div weights 1/3, 2/3, 1; sim = shared weight / 3 unique items.
    # s0 {1,2,3}: 2/3, step 1;  s1 {2,4}: 1/3, step 1;  s2 {1,2,5,6}: 5/9, step 1;
    # s3 {3,7}: 1/9, most recent shared click 3 steps back -> decay 1/3.
    knn = SessionKNN(k=4, sequential=True).fit(as_sessions(TOY))
    got = knn.scores(padded([[3, 1, 2]], 5), max_item=9)[0]
    s0, s1, s2, s3 = 2 / 3, 1 / 3, 5 / 9, 1 / 27
    expected = [s0 + s2, s0 + s1 + s2, s0 + s3, s1, s2, s2, s3, 0, 0]
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_vsknn_repeated_item_takes_its_last_position():
    # Clicks [2, 1, 2]: item 2 weighs 3/3, item 1 2/3; 2 unique items. s1 {2,4}: sim 1/2.
    knn = SessionKNN(k=1, sequential=True).fit(as_sessions([[2, 4], [1, 5]]))
    got = knn.scores(padded([[2, 1, 2]], 3), max_item=5)[0]
    np.testing.assert_allclose(got, [0, 0.5, 0, 0.5, 0], rtol=1e-12)


def test_vsknn_decay_beyond_52_clicks_back():
    # Only the oldest of 60 clicks (item 1) is in the memory: step 60, decay 1/60; the item
    # weighs 1/60 (div) over 60 unique items.
    knn = SessionKNN(k=1, sequential=True).fit(as_sessions([[1, 2]]))
    clicks = [1] + list(range(100, 159))
    got = knn.scores(padded([clicks], 64), max_item=2)[0]
    np.testing.assert_allclose(got, [1 / 60 / 60 / 60] * 2, rtol=1e-12)


def test_padding_is_ignored():
    for sequential in (False, True):
        knn = SessionKNN(k=3, sequential=sequential).fit(as_sessions(TOY))
        short = knn.scores(np.array([[3, 1, 2]]), max_item=9)
        long = knn.scores(padded([[3, 1, 2]], 10), max_item=9)
        np.testing.assert_array_equal(short, long)


def test_unseen_items_and_empty_rows():
    knn = SessionKNN(k=2).fit(as_sessions(TOY))
    got = knn.scores(padded([[1, 2, 50], []], 4), max_item=12)
    assert got.shape == (2, 12)
    a = 2 / math.sqrt(9)  # |s| = 3 counts the unseen item; s0 2/sqrt(9), s2 2/sqrt(12)
    assert got[0, 2] == pytest.approx(a)
    assert not got[1].any()


# === Ranks ===


def test_ranks_break_ties_at_random():
    knn = SessionKNN(k=2).fit(as_sessions(TOY))
    # Scores: items 1, 2 tie on top, then 3, then 5 = 6; 4, 7, 8, 9 score 0.
    targets = np.array([1, 3, 5, 4, 9], dtype=np.int32)
    low, high = np.array([0, 2, 3, 5, 5]), np.array([1, 2, 4, 8, 8])
    n = 4000
    examples = Examples(padded([[1, 2]] * (5 * n), 4), np.tile(targets, n))
    ranks = knn.target_ranks(examples, max_item=9, seed=3).reshape(n, 5)
    assert (ranks >= low).all() and (ranks <= high).all()
    # Uniform over the tied places: the mean rank is the middle of each range.
    np.testing.assert_allclose(ranks.mean(axis=0), (low + high) / 2, atol=0.06)
    np.testing.assert_array_equal(
        ranks, knn.target_ranks(examples, max_item=9, seed=3).reshape(n, 5))
    with pytest.raises(ValueError, match="max_item=9"):
        knn.target_ranks(Examples(examples.inputs[:1], np.array([10], np.int32)), max_item=9)


def test_rank_counts_are_the_tie_bounds_whatever_the_batch():
    knn = SessionKNN(k=2).fit(as_sessions(TOY))
    targets = np.array([1, 3, 5, 4, 9], dtype=np.int32)
    examples = Examples(padded([[1, 2]] * 5, 4), targets)
    for batch_size in (1, 2, 512):
        above, ties = knn.rank_counts(examples, max_item=9, batch_size=batch_size)
        # Items 1, 2 tie on top, then 3, then 5 = 6; 4, 7, 8, 9 score 0 (see above).
        np.testing.assert_array_equal(above, [0, 2, 3, 5, 5])
        np.testing.assert_array_equal(ties, [1, 0, 1, 3, 3])
    # target_ranks draws its ties from these counts: a caller holding them (a benchmark
    # comparing rank rules) gets the same ranks without scoring twice.
    np.testing.assert_array_equal(knn.target_ranks(examples, 9, batch_size=2, seed=7),
                                  break_ties(above, ties, seed=7))


# === Inputs by shape, not by type ===


def test_plain_arrays_work_as_memory_and_examples():
    # Anything with the protocols' attributes will do: the model needs no data classes.
    memory = as_sessions(TOY)
    plain_memory = SimpleNamespace(items=memory.items.copy(), lengths=memory.lengths.copy())
    inputs, targets = padded([[1, 2], [3], [8]], 4), np.array([5, 7, 9], np.int32)
    knn, plain = SessionKNN(k=2).fit(memory), SessionKNN(k=2).fit(plain_memory)
    np.testing.assert_array_equal(plain.scores(inputs, 9), knn.scores(inputs, 9))
    np.testing.assert_array_equal(
        plain.target_ranks(SimpleNamespace(inputs=inputs, targets=targets), 9, seed=1),
        knn.target_ranks(Examples(inputs, targets), 9, seed=1),
    )
    with pytest.raises(ValueError, match="sum to the 3 items"):
        SessionKNN().fit(SimpleNamespace(items=np.array([1, 2, 3]), lengths=np.array([1, 1])))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"k": 0}, "k must be"),
        ({"sample_size": 0}, "sample_size must be"),
        ({"weighting": "cubic"}, "'cubic'"),
        ({"weighting_score": "exp"}, "'exp'"),
        ({"similarity": "dot"}, "'dot'"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SessionKNN(**kwargs)


# === Agreement with the reference on random data ===


def random_case(seed: int, num_items: int = 30, maxlen: int = 8, long: bool = False):
    rng = np.random.default_rng(seed)
    popularity = rng.zipf(1.5, num_items).astype(float)
    p = popularity / popularity.sum()
    memory = [
        rng.choice(np.arange(1, num_items + 1), size=rng.integers(1, 7), p=p).tolist()
        for _ in range(120)
    ]
    top = 70 if long else 12
    currents = [
        rng.choice(np.arange(1, num_items + 4), size=rng.integers(1, top)).tolist()
        for _ in range(25)
    ]
    targets = rng.integers(1, num_items + 1, size=len(currents)).astype(np.int32)
    return memory, currents, targets


@pytest.mark.parametrize(
    "config",
    [
        {"k": 5, "sample_size": 20},
        {"k": 3, "sample_size": None, "similarity": "jaccard"},
        {"k": 100, "sample_size": 7},
        {"k": 5, "sample_size": 20, "sequential": True},
        {"k": 4, "sample_size": 10, "sequential": True, "weighting": "log",
         "weighting_score": "quadratic"},
        {"k": 6, "sample_size": None, "sequential": True, "weighting": "linear",
         "weighting_score": "linear"},
        {"k": 8, "sample_size": 30, "sequential": True, "weighting": "same", "long": True},
    ],
)
def test_agrees_with_reference(config):
    config = dict(config)
    long = config.pop("long", False)
    maxlen = 64 if long else 10
    memory, currents, targets = random_case(len(str(config)), long=long)
    max_item = 33
    knn = SessionKNN(**config).fit(as_sessions(memory))
    inputs = padded(currents, maxlen)
    got = knn.scores(inputs, max_item)
    expected = np.stack([
        reference_scores(memory, row, max_item, **{
            "k": knn.k, "sample_size": knn.sample_size, "sequential": knn.sequential,
            "weighting": knn.weighting, "weighting_score": knn.weighting_score,
            "similarity": knn.similarity,
        })
        for row in inputs
    ])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    examples = Examples(inputs, targets)
    ranks = knn.target_ranks(examples, max_item, batch_size=4)
    above, ties = reference_rank_bounds(expected, targets)
    assert (ranks >= above).all() and (ranks <= above + ties).all()


def test_ranks_match_the_evaluation_rule():
    import tensorflow as tf

    from ader_tf.evaluation import target_ranks

    memory, currents, targets = random_case(3)
    knn = SessionKNN(k=5, sample_size=20, sequential=True).fit(as_sessions(memory))
    inputs = padded(currents, 10)
    logits = tf.constant(knn.scores(inputs, 33))
    strictly_above = target_ranks(logits, tf.constant(targets)).numpy()
    _, ties = reference_rank_bounds(logits.numpy(), targets)
    ranks = knn.target_ranks(Examples(inputs, targets), 33)
    # The evaluation's rule, plus a random share of the ties (none: the same rank).
    assert (ranks >= strictly_above).all() and (ranks <= strictly_above + ties).all()
    np.testing.assert_array_equal(ranks[ties == 0], strictly_above[ties == 0])
