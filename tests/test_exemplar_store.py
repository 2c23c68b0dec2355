"""Tests for exemplar persistence: round trips, checksums, stale and damaged files."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from ader_tf.continual.exemplar_store import ExemplarFileError, load_exemplars, save_exemplars

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
