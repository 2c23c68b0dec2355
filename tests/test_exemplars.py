"""Tests for exemplar quotas, selection (herding parity with the reference) and persistence."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

from ader_tf.continual.exemplars import (
    ExemplarFileError,
    exemplar_quotas,
    herding_order,
    load_exemplars,
    save_exemplars,
    select_exemplars,
)

# === Fixture from the reference implementation ===


def _parity_dir() -> Path:
    env = os.environ.get("ADER_PARITY_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[1].parent / "shared" / "parity"


HERDING_NPZ = _parity_dir() / "herding.npz"


def _herding_cases() -> list[int | None]:
    if not HERDING_NPZ.is_file():
        return [None]
    with np.load(HERDING_NPZ, allow_pickle=False) as data:
        return list(range(int(data["cases"])))


@pytest.mark.parametrize("case", _herding_cases())
def test_herding_matches_reference(case: int | None) -> None:
    if case is None:
        pytest.skip(f"herding parity fixture not found at {HERDING_NPZ} (set ADER_PARITY_DIR)")
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


# === Persistence ===

META = {"cycle": 3, "max_item": 30, "method": "herding", "config_fingerprint": "abc123"}


def _arrays(n: int = 25, maxlen: int = 6) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(9)
    inputs = rng.integers(1, 31, size=(n, maxlen)).astype(np.int32)
    inputs[:, :2] = 0  # left padding
    return inputs, rng.integers(1, 31, size=n).astype(np.int32)


def test_round_trip(tmp_path: Path) -> None:
    inputs, targets = _arrays()
    npz, js = save_exemplars(tmp_path / "ex_cycle3", inputs, targets, META)
    assert npz.name == "ex_cycle3.npz" and js.name == "ex_cycle3.json"
    got_inputs, got_targets, meta = load_exemplars(tmp_path / "ex_cycle3", expected=META)
    np.testing.assert_array_equal(got_inputs, inputs)
    np.testing.assert_array_equal(got_targets, targets)
    assert got_inputs.dtype == np.int32 and got_targets.dtype == np.int32
    assert meta["count"] == 25 and meta["maxlen"] == 6 and meta["cycle"] == 3
    assert meta["sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex_cycle3.json", "ex_cycle3.npz"]


def test_round_trip_folder_suffix_and_empty(tmp_path: Path) -> None:
    empty = (np.zeros((0, 6), np.int32), np.zeros(0, np.int32))
    save_exemplars(tmp_path, *empty, {**META, "cycle": np.int64(3)})
    assert (tmp_path / "exemplars.npz").is_file()
    inputs, targets, _ = load_exemplars(tmp_path / "exemplars.json", expected={"cycle": 3})
    assert inputs.shape == (0, 6) and targets.shape == (0,)


def test_overwrite_replaces_old_files(tmp_path: Path) -> None:
    inputs, targets = _arrays()
    save_exemplars(tmp_path / "ex", inputs, targets, META)
    save_exemplars(tmp_path / "ex", inputs[:5], targets[:5], {**META, "cycle": 4})
    got, _, meta = load_exemplars(tmp_path / "ex", expected={"cycle": 4})
    assert len(got) == 5 and meta["count"] == 5


def test_flipped_byte_is_detected(tmp_path: Path) -> None:
    npz, _ = save_exemplars(tmp_path / "ex", *_arrays(), META)
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    npz.write_bytes(bytes(raw))
    with pytest.raises(ExemplarFileError, match="checksum mismatch") as err:
        load_exemplars(tmp_path / "ex")
    assert str(npz) in str(err.value)


def test_stale_cycle_or_config_is_rejected(tmp_path: Path) -> None:
    save_exemplars(tmp_path / "ex", *_arrays(), META)
    with pytest.raises(ExemplarFileError, match="cycle is 3, expected 4"):
        load_exemplars(tmp_path / "ex", expected={"cycle": 4})
    with pytest.raises(ExemplarFileError, match="config_fingerprint"):
        load_exemplars(tmp_path / "ex", expected={"config_fingerprint": "other"})


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_missing_file_is_detected(tmp_path: Path, suffix: str) -> None:
    save_exemplars(tmp_path / "ex", *_arrays(), META)
    (tmp_path / f"ex{suffix}").unlink()
    with pytest.raises(ExemplarFileError, match="missing") as err:
        load_exemplars(tmp_path / "ex")
    assert f"ex{suffix}" in str(err.value)


def _write_raw(stem: Path, inputs: np.ndarray, targets: np.ndarray, **meta_over: object) -> None:
    """Writes a file pair by hand (valid checksum) to reach checks behind the checksum."""
    buf = io.BytesIO()
    np.savez(buf, inputs=inputs, targets=targets)
    payload = buf.getvalue()
    meta = {
        **META,
        "count": len(targets),
        "maxlen": 6,
        "format": "ader_tf.exemplars/1",
        "sha256": hashlib.sha256(payload).hexdigest(),
        **meta_over,
    }
    stem.with_suffix(".npz").write_bytes(payload)
    stem.with_suffix(".json").write_text(json.dumps(meta))


def test_inconsistent_shapes_are_detected(tmp_path: Path) -> None:
    inputs, targets = _arrays()
    _write_raw(tmp_path / "ex", inputs, targets[:-1])
    with pytest.raises(ExemplarFileError, match="shapes inconsistent"):
        load_exemplars(tmp_path / "ex")
    _write_raw(tmp_path / "ex", inputs, targets, count=99)
    with pytest.raises(ExemplarFileError, match="metadata says 99"):
        load_exemplars(tmp_path / "ex")


def test_ids_out_of_range_are_detected(tmp_path: Path) -> None:
    inputs, targets = _arrays()
    _write_raw(tmp_path / "ex", inputs, targets, max_item=10)
    with pytest.raises(ExemplarFileError, match="out of range"):
        load_exemplars(tmp_path / "ex")


def test_corrupt_json_is_detected(tmp_path: Path) -> None:
    _, js = save_exemplars(tmp_path / "ex", *_arrays(), META)
    js.write_text("{not json")
    with pytest.raises(ExemplarFileError, match="unreadable metadata"):
        load_exemplars(tmp_path / "ex")


def test_save_validates_metadata_and_arrays(tmp_path: Path) -> None:
    inputs, targets = _arrays()
    with pytest.raises(ValueError, match="config_fingerprint"):
        save_exemplars(
            tmp_path / "ex", inputs, targets, {"cycle": 1, "max_item": 30, "method": "loss"}
        )
    with pytest.raises(ValueError, match="reserved"):
        save_exemplars(tmp_path / "ex", inputs, targets, {**META, "sha256": "x"})
    with pytest.raises(ValueError, match="out of range"):
        save_exemplars(tmp_path / "ex", inputs, targets, {**META, "max_item": 5})
    assert list(tmp_path.iterdir()) == []
