"""Tests for exemplar quotas, selection (herding parity with the reference) and reservoirs."""

from __future__ import annotations

import re
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from ader_tf.continual.exemplar_selection import (
    exemplar_quotas,
    herding_order,
    reservoir_select,
    reservoir_update,
    select_exemplars,
)
from tests.conftest import missing_fixture, parity_path

# === Fixture from the reference implementation ===


HERDING_NPZ = Path(parity_path()) / "herding.npz"


def _herding_cases() -> list[int | None]:
    if not HERDING_NPZ.is_file():
        return [None]
    with np.load(HERDING_NPZ, allow_pickle=False) as data:
        return list(range(int(data["cases"])))


@pytest.mark.parametrize("case", _herding_cases())
def test_herding_matches_reference(case: int | None) -> None:
    if case is None:
        missing_fixture(f"herding parity fixture not found at {HERDING_NPZ} (set ADER_PARITY_DIR)")
    with np.load(HERDING_NPZ, allow_pickle=False) as data:
        reps, m, want = data[f"rep_{case}"], int(data[f"m_{case}"]), data[f"selected_{case}"]
    got = herding_order(reps, m)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want, err_msg=f"case {case}: n={len(reps)}, m={m}")


# === Herding properties ===


def _reps(n: int, d: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, d)) + rng.normal(size=d)).astype(np.float32)


def test_herding_zero_quota_is_empty() -> None:
    assert herding_order(_reps(5, 4, 0), 0).shape == (0,)


def test_herding_quota_above_n_is_capped_at_n() -> None:
    reps = _reps(6, 8, 1)
    np.testing.assert_array_equal(herding_order(reps, 50), herding_order(reps, 6))


def test_herding_picks_distinct_rows_and_stops_at_step_cap() -> None:
    for seed in range(20):
        reps = _reps(30, 8, seed)
        picked = herding_order(reps, 20)
        assert len(set(picked.tolist())) == len(picked) <= 20
        assert picked.min() >= 0 and picked.max() < 30


def test_herding_first_pick_is_closest_to_mean() -> None:
    reps = _reps(12, 16, 3)
    unit = reps / np.linalg.norm(reps, axis=1, keepdims=True)
    assert herding_order(reps, 1)[0] == int(np.argmax(unit @ unit.mean(axis=0)))


def test_herding_ties_take_the_first_maximum() -> None:
    reps = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    assert herding_order(reps, 1).tolist() == [0]


# === Quotas ===


def test_quotas_sum_and_slot_zero_when_no_cap_binds() -> None:
    targets = np.repeat(np.arange(1, 11), 1000).astype(np.int32)
    quotas = exemplar_quotas(targets, 500, 10, equal=False, rng=np.random.default_rng(0))
    assert quotas.dtype == np.int64 and quotas.shape == (11,)
    assert quotas[0] == 0 and quotas.sum() == 500


def test_quotas_never_exceed_candidate_counts() -> None:
    rng = np.random.default_rng(1)
    targets = rng.integers(1, 51, size=300).astype(np.int32)
    counts = np.bincount(targets, minlength=61)
    for equal in (False, True):
        quotas = exemplar_quotas(targets, 10_000, 60, equal=equal, rng=rng)
        assert np.all(quotas <= counts)
        assert quotas[51:].sum() == 0  # items without candidates get nothing
    # A size far above the candidate count keeps every candidate.
    np.testing.assert_array_equal(exemplar_quotas(targets, 10**6, 60, False, rng), counts)


def test_quotas_proportional_vs_equal() -> None:
    targets = np.concatenate([np.full(9000, 1), np.full(1000, 2)]).astype(np.int32)
    prop = exemplar_quotas(targets, 1000, 2, equal=False, rng=np.random.default_rng(2))
    equal = exemplar_quotas(targets, 1000, 2, equal=True, rng=np.random.default_rng(2))
    assert 850 <= prop[1] <= 950 and prop.sum() == 1000
    assert 420 <= equal[1] <= 580 and equal.sum() == 1000


def test_equal_quotas_spread_over_all_items_up_to_max_item() -> None:
    # Uniform over 1..max_item, so draws landing on items without candidates are lost.
    targets = np.full(5000, 1, dtype=np.int32)
    quotas = exemplar_quotas(targets, 1000, 4, equal=True, rng=np.random.default_rng(3))
    assert 180 <= quotas[1] <= 320 and quotas[2:].sum() == 0


def test_quotas_reproducible_and_validated() -> None:
    targets = np.random.default_rng(4).integers(1, 20, size=200).astype(np.int32)
    a = exemplar_quotas(targets, 100, 20, False, np.random.default_rng(7))
    b = exemplar_quotas(targets, 100, 20, False, np.random.default_rng(7))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="1..5"):
        exemplar_quotas(targets, 100, 5, False, np.random.default_rng(0))
    with pytest.raises(ValueError, match="candidate"):
        exemplar_quotas(np.zeros(0, np.int32), 100, 5, False, np.random.default_rng(0))


# === Selection ===


@pytest.fixture
def candidates() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    n, max_item = 400, 40
    targets = rng.integers(1, max_item - 4, size=n).astype(np.int32)  # last items unused
    quotas = np.zeros(max_item + 1, dtype=np.int64)
    quotas[1:] = rng.integers(0, 12, size=max_item)
    return {
        "targets": targets,
        "quotas": quotas,
        "reps": rng.normal(size=(n, 16)).astype(np.float32),
        "losses": rng.exponential(size=n).astype(np.float32),
    }


def _expected_counts(targets: np.ndarray, quotas: np.ndarray) -> np.ndarray:
    return np.minimum(quotas, np.bincount(targets, minlength=quotas.size))


@pytest.mark.parametrize("method", ["herding", "loss", "random"])
def test_selection_respects_items_and_counts(method: str, candidates: dict) -> None:
    targets, quotas = candidates["targets"], candidates["quotas"]
    picked = select_exemplars(
        targets,
        quotas,
        method,
        reps=candidates["reps"],
        losses=candidates["losses"],
        rng=np.random.default_rng(0),
    )
    assert picked.dtype == np.int64 and len(np.unique(picked)) == len(picked)
    got = np.bincount(targets[picked], minlength=quotas.size)
    want = _expected_counts(targets, quotas)
    if method == "herding":  # the 1.1*m step cap may stop short of m
        assert np.all(got <= want) and np.all((got > 0) == (want > 0))
    else:
        np.testing.assert_array_equal(got, want)
    assert np.all(np.diff(targets[picked]) >= 0), "items must come in increasing id order"


def test_herding_selection_runs_herding_per_item(candidates: dict) -> None:
    targets, quotas, reps = candidates["targets"], candidates["quotas"], candidates["reps"]
    picked = select_exemplars(targets, quotas, "herding", reps=reps)
    want = []
    for item in range(1, quotas.size):
        members = np.flatnonzero(targets == item)
        if quotas[item] and members.size:
            want.extend(members[herding_order(reps[members], quotas[item])])
    np.testing.assert_array_equal(picked, want)


def test_loss_selection_keeps_smallest_losses(candidates: dict) -> None:
    targets, quotas, losses = candidates["targets"], candidates["quotas"], candidates["losses"]
    picked = select_exemplars(targets, quotas, "loss", losses=losses)
    for item in range(1, quotas.size):
        members = np.flatnonzero(targets == item)
        mine = picked[targets[picked] == item]
        k = min(quotas[item], members.size)
        np.testing.assert_array_equal(mine, members[np.argsort(losses[members])[:k]])
        if 0 < k < members.size:
            rest = np.setdiff1d(members, mine)
            assert losses[mine].max() <= losses[rest].min()


def test_loss_selection_is_not_first_m() -> None:
    # The reference's broken rule would keep candidates 0 and 1.
    targets = np.ones(5, dtype=np.int32)
    losses = np.array([3.0, 2.0, 0.5, 4.0, 0.1])
    picked = select_exemplars(targets, np.array([0, 2]), "loss", losses=losses)
    assert picked.tolist() == [4, 2]


def test_random_selection_reproducible(candidates: dict) -> None:
    targets, quotas = candidates["targets"], candidates["quotas"]
    a = select_exemplars(targets, quotas, "random", rng=np.random.default_rng(11))
    b = select_exemplars(targets, quotas, "random", rng=np.random.default_rng(11))
    c = select_exemplars(targets, quotas, "random", rng=np.random.default_rng(12))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_selection_is_uniform() -> None:
    targets = np.ones(4, dtype=np.int32)
    rng = np.random.default_rng(13)
    hits = np.zeros(4)
    for _ in range(2000):
        hits[select_exemplars(targets, np.array([0, 1]), "random", rng=rng)] += 1
    assert np.all(np.abs(hits / 2000 - 0.25) < 0.04)


def test_selection_validates_inputs(candidates: dict) -> None:
    targets, quotas = candidates["targets"], candidates["quotas"]
    with pytest.raises(ValueError, match="method"):
        select_exemplars(targets, quotas, "kmeans")
    with pytest.raises(ValueError, match="reps"):
        select_exemplars(targets, quotas, "herding")
    with pytest.raises(ValueError, match="losses"):
        select_exemplars(targets, quotas, "loss", losses=np.zeros(3))
    with pytest.raises(ValueError, match="rng"):
        select_exemplars(targets, quotas, "random")
    with pytest.raises(ValueError, match="targets"):
        select_exemplars(targets, quotas[:10], "random", rng=np.random.default_rng(0))


def test_selection_with_all_zero_quotas_is_empty(candidates: dict) -> None:
    quotas = np.zeros_like(candidates["quotas"])
    for method in ("herding", "loss", "random"):
        picked = select_exemplars(
            candidates["targets"],
            quotas,
            method,
            reps=candidates["reps"],
            losses=candidates["losses"],
            rng=np.random.default_rng(0),
        )
        assert picked.shape == (0,) and picked.dtype == np.int64


# === Reservoir sampling ===


def _stream_reservoir(chunks: list[int], capacity: int, rng: np.random.Generator) -> np.ndarray:
    """Stream positions held by the reservoir after feeding chunks of these sizes in order."""
    held = np.zeros(0, dtype=np.int64)
    seen = 0
    for size in chunks:
        index = reservoir_select(len(held), seen, size, capacity, rng)
        held = np.concatenate([held, seen + np.arange(size)])[index]
        seen += size
    return held


def test_reservoir_keeps_everything_in_order_while_there_is_room() -> None:
    rng = np.random.default_rng(0)
    before = rng.bit_generator.state
    np.testing.assert_array_equal(_stream_reservoir([10], 10, rng), np.arange(10))
    np.testing.assert_array_equal(_stream_reservoir([3, 0, 4, 5], 20, rng), np.arange(12))
    slots, sources = reservoir_update(3, 3, 4, 20, rng)
    assert slots.dtype == sources.dtype == np.int64
    assert slots.tolist() == [3, 4, 5, 6] and sources.tolist() == [0, 1, 2, 3]
    assert rng.bit_generator.state == before  # filling free slots draws nothing
    empty_slots, empty_sources = reservoir_update(3, 3, 0, 20, rng)
    assert empty_slots.shape == empty_sources.shape == (0,)


def test_reservoir_update_matches_algorithm_r_one_example_at_a_time() -> None:
    # Capacity 2 and 60 arrivals: most slots are written several times, the last write wins.
    kept, seen, num_new, capacity = 1, 1, 60, 2
    for seed in range(100):
        index = reservoir_select(kept, seen, num_new, capacity, np.random.default_rng(seed))
        # The same draws (one per example arriving with the reservoir full), applied in turn.
        fill = capacity - kept
        positions = seen + np.arange(fill, num_new)
        draws = iter(np.random.default_rng(seed).integers(0, positions + 1))
        reservoir = list(range(kept))  # rows of [old rows, new rows]
        for j in range(num_new):
            if seen + j < capacity:
                reservoir.append(kept + j)
            elif (r := next(draws)) < capacity:
                reservoir[r] = kept + j
        assert index.tolist() == reservoir, seed


TRIALS = 20_000
STREAM, CAPACITY = 8, 3


def _check_uniform_reservoirs(chunks: list[int]) -> None:
    """Over TRIALS seeds: each stream item is kept with probability CAPACITY / STREAM, and
    every CAPACITY-subset of the stream is equally likely."""
    inclusion = np.zeros(STREAM, dtype=np.int64)
    subsets: dict[tuple[int, ...], int] = {}
    for seed in range(TRIALS):
        held = _stream_reservoir(chunks, CAPACITY, np.random.default_rng(seed))
        assert len(held) == CAPACITY == len(np.unique(held))
        inclusion[held] += 1
        key = tuple(sorted(held.tolist()))
        subsets[key] = subsets.get(key, 0) + 1
    # Each count is Binomial(TRIALS, p), p = 3/8: std = sqrt(TRIALS p (1 - p)) ~ 68.5. Five
    # std either side fails a correct sampler with probability < 8 * 6e-7, while drawing r
    # from 0..t-1 instead of 0..t would move the last item's count by ~1070.
    p = CAPACITY / STREAM
    tolerance = 5 * np.sqrt(TRIALS * p * (1 - p))
    np.testing.assert_array_less(np.abs(inclusion - TRIALS * p), tolerance, err_msg=str(chunks))
    # All C(8, 3) = 56 subsets, uniform: Pearson's chi-square with 55 degrees of freedom,
    # rejected at a false-alarm rate of 1e-4.
    counts = np.array([subsets.get(key, 0) for key in combinations(range(STREAM), CAPACITY)])
    expected = TRIALS / len(counts)
    chi2 = ((counts - expected) ** 2 / expected).sum()
    assert chi2 < stats.chi2.isf(1e-4, len(counts) - 1), (chunks, chi2)


def test_reservoir_keeps_each_item_with_probability_capacity_over_stream() -> None:
    _check_uniform_reservoirs([STREAM])


def test_reservoir_fed_in_chunks_is_just_as_uniform_and_seeded() -> None:
    # Below capacity, empty, across capacity (one free slot, then draws), then draws only.
    chunks = [2, 0, 3, 3]
    _check_uniform_reservoirs(chunks)
    one = _stream_reservoir(chunks, CAPACITY, np.random.default_rng(7))
    again = _stream_reservoir(chunks, CAPACITY, np.random.default_rng(7))
    np.testing.assert_array_equal(one, again)
    runs = {tuple(_stream_reservoir(chunks, CAPACITY, np.random.default_rng(s))) for s in range(20)}
    assert len(runs) > 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, 0, 1, 3), "kept must be an integer >= 0, got -1"),
        ((0, -2, 1, 3), "seen must be an integer >= 0, got -2"),
        ((0, 0, -3, 3), "num_new must be an integer >= 0, got -3"),
        ((0, 0, 1, -4), "capacity must be an integer >= 0, got -4"),
        ((0, 0, 1.5, 3), "num_new must be an integer >= 0, got 1.5"),
        ((0, 0, True, 3), "num_new must be an integer >= 0, got True"),
        ((2, 5, 1, 3), "kept must be min(seen, capacity) = 3 (seen=5, capacity=3), got 2"),
        ((4, 5, 1, 3), "kept must be min(seen, capacity) = 3 (seen=5, capacity=3), got 4"),
    ],
)
def test_reservoir_rejects_bad_arguments(args: tuple, message: str) -> None:
    for function in (reservoir_update, reservoir_select):
        with pytest.raises(ValueError, match=re.escape(message)):
            function(*args, np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng must be a numpy Generator, got None"):
        reservoir_update(0, 0, 1, 3, None)
