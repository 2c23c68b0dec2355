"""Exemplar persistence: checksummed ``.npz`` + ``.json`` pairs that a resumed run can trust.

:func:`save_exemplars` writes a ``.npz`` with the arrays and a ``.json`` with metadata and the
npz checksum, so :func:`load_exemplars` can tell a complete, matching file from a stale or
damaged one. The format (``ader_tf.exemplars/1``) is unchanged from earlier runs, whose files
still load. Choosing the exemplars is ``exemplar_selection``'s job.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ader_tf.io_utils import DamagedFileError, load_checked_npz, save_checked_npz

REQUIRED_METADATA = ("cycle", "max_item", "method", "config_fingerprint")
"""Keys the caller must put in the metadata given to :func:`save_exemplars`."""

_COMPUTED_METADATA = ("count", "maxlen", "sha256", "format")
_FORMAT = "ader_tf.exemplars/1"
_DEFAULT_STEM = "exemplars"


class ExemplarFileError(DamagedFileError):
    """An exemplar file is missing, damaged, inconsistent or from another run."""


# === Persistence ===


def save_exemplars(
    path: str | os.PathLike[str],
    inputs: np.ndarray,
    targets: np.ndarray,
    metadata: Mapping[str, Any],
) -> tuple[Path, Path]:
    """Writes exemplars as ``<stem>.npz`` (arrays) and ``<stem>.json`` (metadata), atomically.

    Each file goes to a temporary file in the same folder and is renamed into place; any old
    json is removed first and the new one is written last, so a json on disk means its npz is
    complete. The json records the caller's metadata plus ``count``, ``maxlen``, ``format`` and
    the ``sha256`` of the npz bytes. No pickle is involved.

    Args:
        path: the stem (``.../exemplars_cycle3``; a ``.npz``/``.json`` suffix is dropped) or an
            existing folder, which gets ``exemplars.npz``/``.json``.
        inputs: int ``[N, maxlen]`` left-padded input sequences, ids in 0..max_item.
        targets: int ``[N]`` target ids in 1..max_item.
        metadata: JSON-serialisable; must hold :data:`REQUIRED_METADATA` and none of the keys
            computed here.

    Returns:
        The paths of the npz and json written.

    Raises:
        ValueError: on missing or reserved metadata keys or inconsistent arrays.
    """
    missing = [k for k in REQUIRED_METADATA if k not in metadata]
    reserved = [k for k in _COMPUTED_METADATA if k in metadata]
    if missing or reserved:
        raise ValueError(f"metadata lacks keys {missing} or sets reserved keys {reserved}")
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    problem = _array_problem(inputs, targets, int(metadata["max_item"]))
    if problem:
        raise ValueError(f"cannot save exemplars: {problem}")

    record = {
        **_json_roundtrip(dict(metadata)),
        "count": int(targets.size),
        "maxlen": int(inputs.shape[1]),
        "format": _FORMAT,
    }
    npz_path, json_path = _paths(path)
    save_checked_npz(
        npz_path, {"inputs": inputs.astype(np.int32), "targets": targets.astype(np.int32)}, record
    )
    return npz_path, json_path


def load_exemplars(
    path: str | os.PathLike[str], expected: Mapping[str, Any] | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Reads exemplars written by :func:`save_exemplars`, checking they are whole and match.

    Args:
        path: the same stem or folder given to :func:`save_exemplars`.
        expected: metadata values that must match the stored ones exactly (for example
            ``{"cycle": 3, "config_fingerprint": fp}``), so a stale file is never reused.

    Returns:
        ``(inputs int32 [N, maxlen], targets int32 [N], metadata)``.

    Raises:
        ExemplarFileError: naming the file and the problem: a missing file, unreadable json,
            checksum mismatch, metadata differing from ``expected``, inconsistent shapes or
            ids out of range.
    """
    npz_path, json_path = _paths(path)
    try:
        arrays, metadata = load_checked_npz(npz_path)
    except DamagedFileError as e:
        raise ExemplarFileError(e.path, e.problem) from e
    absent = [k for k in (*REQUIRED_METADATA, *_COMPUTED_METADATA) if k not in metadata]
    if absent or metadata["format"] != _FORMAT:
        raise ExemplarFileError(json_path, f"not an exemplar record (missing {absent})")
    for key, want in _json_roundtrip(dict(expected or {})).items():
        if metadata.get(key) != want:
            raise ExemplarFileError(
                json_path, f"{key} is {metadata.get(key)!r}, expected {want!r} (stale file?)"
            )
    if sorted(arrays) != ["inputs", "targets"]:
        raise ExemplarFileError(npz_path, f"unexpected arrays {sorted(arrays)}")
    inputs, targets = arrays["inputs"], arrays["targets"]
    problem = _array_problem(inputs, targets, metadata["max_item"])
    if not problem and targets.size != metadata["count"]:
        problem = f"holds {targets.size} exemplars, metadata says {metadata['count']}"
    if not problem and inputs.shape[1] != metadata["maxlen"]:
        problem = f"maxlen {inputs.shape[1]}, metadata says {metadata['maxlen']}"
    if problem:
        raise ExemplarFileError(npz_path, problem)
    return inputs.astype(np.int32), targets.astype(np.int32), metadata


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    """The npz and json paths for a stem, a suffixed name or a folder."""
    stem = Path(path)
    if stem.is_dir():
        stem = stem / _DEFAULT_STEM
    elif stem.suffix in (".npz", ".json"):
        stem = stem.with_suffix("")
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def _array_problem(inputs: np.ndarray, targets: np.ndarray, max_item: int) -> str | None:
    """Describes what is wrong with an exemplar array pair, or returns None."""
    if inputs.ndim != 2 or targets.ndim != 1 or inputs.shape[0] != targets.shape[0]:
        return f"shapes inconsistent: inputs {inputs.shape}, targets {targets.shape}"
    if not (np.issubdtype(inputs.dtype, np.integer) and np.issubdtype(targets.dtype, np.integer)):
        return f"ids must be integers, got {inputs.dtype} and {targets.dtype}"
    if targets.size and (targets.min() < 1 or targets.max() > max_item):
        return f"target ids out of range 1..{max_item}: {targets.min()}..{targets.max()}"
    if inputs.size and (inputs.min() < 0 or inputs.max() > max_item):
        return f"input ids out of range 0..{max_item}: {inputs.min()}..{inputs.max()}"
    return None


def _json_roundtrip(obj: dict[str, Any]) -> dict[str, Any]:
    """Returns ``obj`` as it reads back from JSON (tuples become lists, numpy scalars plain)."""

    def plain(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        raise TypeError(f"metadata value {value!r} is not JSON-serialisable")

    try:
        return json.loads(json.dumps(obj, default=plain))
    except (TypeError, ValueError) as e:
        raise ValueError(f"metadata must be JSON-serialisable: {e}") from e

