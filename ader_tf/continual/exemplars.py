"""Exemplar selection (quotas, herding, loss, random) and checksummed persistence.

After each cycle ADER keeps a small replay set of examples, the exemplars: every candidate
(this cycle's train + validation examples and the previous exemplars) competes for a per-item
quota drawn from a multinomial, and a selection rule picks that many candidates per target item.
Persistence writes a ``.npz`` with the arrays and a ``.json`` with metadata and the npz checksum,
so a resumed run can tell a complete, matching file from a stale or damaged one.

Examples are plain numpy arrays (``inputs`` int32 ``[N, maxlen]`` left-padded with 0, ``targets``
int32 ``[N]`` with item ids >= 1), so this module does not depend on the data or model code.
Representations and losses are computed by the caller in one batched forward pass.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ader_tf.io_utils import atomic_path

METHODS = ("herding", "loss", "random")
"""Selection rules accepted by :func:`select_exemplars`."""

REQUIRED_METADATA = ("cycle", "max_item", "method", "config_fingerprint")
"""Keys the caller must put in the metadata given to :func:`save_exemplars`."""

_COMPUTED_METADATA = ("count", "maxlen", "sha256", "format")
_FORMAT = "ader_tf.exemplars/1"
_DEFAULT_STEM = "exemplars"


class ExemplarFileError(ValueError):
    """An exemplar file is missing, damaged, inconsistent or from another run."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


# === Quotas ===


def exemplar_quotas(
    targets: np.ndarray,
    exemplar_size: int,
    max_item: int,
    equal: bool,
    rng: np.random.Generator,
) -> np.ndarray:
    """Draws how many exemplars each item may keep.

    One multinomial draw of ``exemplar_size`` over items 1..max_item, with probabilities
    proportional to each item's candidate count (``equal``: uniform over all items 1..max_item,
    as the reference's ``equal_exemplar``), then capped at the item's candidate count, so the
    total can end up below ``exemplar_size``.

    Args:
        targets: int ``[N]`` target item ids of all candidates, in 1..max_item.
        exemplar_size: number of exemplars to draw (30,000 in the paper).
        max_item: largest item id known this cycle.
        equal: draw uniformly over items instead of by candidate count.
        rng: source of randomness.

    Returns:
        int64 ``[max_item + 1]``: quota per item id; slot 0 (padding) is always 0.

    Raises:
        ValueError: on a negative size, no candidates, or target ids outside 1..max_item.
    """
    if exemplar_size < 0:
        raise ValueError(f"exemplar_size must be >= 0, got {exemplar_size}")
    counts = _item_counts(targets, max_item)
    if counts.sum() == 0:
        raise ValueError("exemplar_quotas needs at least one candidate, got none")
    probs = np.full(max_item, 1.0 / max_item) if equal else counts[1:] / counts[1:].sum()
    quotas = np.zeros(max_item + 1, dtype=np.int64)
    quotas[1:] = rng.multinomial(int(exemplar_size), probs)
    return np.minimum(quotas, counts)


def _item_counts(targets: np.ndarray, max_item: int) -> np.ndarray:
    """Candidate count per item id (int64 ``[max_item + 1]``), checking the id range."""
    if max_item < 1:
        raise ValueError(f"max_item must be >= 1, got {max_item}")
    targets = _as_int_vector(targets, "targets")
    if targets.size and (targets.min() < 1 or targets.max() > max_item):
        raise ValueError(
            f"targets must lie in 1..{max_item}, got range {targets.min()}..{targets.max()}"
        )
    return np.bincount(targets, minlength=max_item + 1).astype(np.int64)


def _as_int_vector(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D integer array, got {values.dtype} {values.shape}")
    return values


# === Herding ===


def herding_order(reps: np.ndarray, m: int) -> np.ndarray:
    """Picks ``m`` rows whose running mean tracks the mean of all rows (iCaRL-style herding).

    Reproduces the reference exactly: rows are scaled to unit length, ``mu`` is their mean and
    ``w = mu``; each step picks ``argmax <w, phi>`` (first maximum on ties) and sets
    ``w += mu - phi_picked``. A pick already chosen is not added again, and the loop stops after
    ``m`` distinct picks or ``1.1 * m`` steps, whichever comes first, so fewer than ``m`` rows can
    come back. The arithmetic stays in the dtype of ``reps`` (float32 from the model) and follows
    the reference's array layout, because the picks are sensitive to rounding.

    Args:
        reps: float ``[n, d]`` raw (not normalised) representations of one item's candidates.
        m: quota; values above ``n`` are lowered to ``n`` as the reference's caller does.

    Returns:
        int64 indices into ``reps`` in pick order, distinct, at most ``min(m, n)`` of them.
    """
    reps = np.asarray(reps)
    if reps.ndim != 2:
        raise ValueError(f"reps must be 2-D [n, d], got shape {reps.shape}")
    if not np.issubdtype(reps.dtype, np.floating):
        reps = reps.astype(np.float32)
    m = min(int(m), reps.shape[0])
    if m <= 0:
        return np.zeros(0, dtype=np.int64)
    # Columns are candidates, as in the reference: reductions then run over the same memory
    # order, which keeps every float32 sum bit-identical to it.
    phi = reps.T / np.linalg.norm(reps.T, axis=0)
    mu = phi.mean(axis=1)
    w = mu
    picked: list[int] = []
    seen: set[int] = set()
    steps = 0
    while len(picked) < m and steps < 1.1 * m:
        best = int(np.argmax(np.dot(w, phi)))
        w = w + mu - phi[:, best]
        steps += 1
        if best not in seen:
            seen.add(best)
            picked.append(best)
    return np.asarray(picked, dtype=np.int64)


# === Selection ===


def select_exemplars(
    targets: np.ndarray,
    quotas: np.ndarray,
    method: str,
    reps: np.ndarray | None = None,
    losses: np.ndarray | None = None,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Picks up to ``quotas[y]`` candidates of each target item ``y``.

    Methods:
        - ``herding``: :func:`herding_order` on the item's representations (needs ``reps``).
        - ``loss``: the candidates with the smallest per-example loss (needs ``losses``; ties
          keep candidate order). This is the intended rule, not the reference's: its
          ``loss_selection`` argsorts the batch-mean loss, a scalar, so it keeps the first ``m``
          candidates of each item whatever their loss.
        - ``random``: uniformly without replacement (needs ``rng``).

    Args:
        targets: int ``[N]`` target item id of every candidate.
        quotas: int ``[max_item + 1]`` from :func:`exemplar_quotas`; a quota above an item's
            candidate count is lowered to it.
        method: one of :data:`METHODS`.
        reps: float ``[N, d]`` final representations (dropout off), for ``herding``.
        losses: float ``[N]`` per-example loss, for ``loss``.
        rng: random generator, for ``random``; the result is fixed by its seed.

    Returns:
        int64 candidate indices, grouped by item in increasing id order; inside an item in
        pick order (herding), increasing loss (loss) or random order (random).

    Raises:
        ValueError: on an unknown method, a missing or mis-shaped input, or targets outside
            the quota range.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    quotas = _as_int_vector(quotas, "quotas")
    targets = _as_int_vector(targets, "targets")
    if quotas.size < 2:
        raise ValueError(f"quotas must cover at least item 1, got shape {quotas.shape}")
    counts = _item_counts(targets, quotas.size - 1)
    take = np.minimum(np.maximum(quotas, 0), counts)
    take[0] = 0
    if method == "herding":
        reps = _check_rows(reps, targets.size, "reps", ndim=2)
        return _select_herding(targets, take, counts, reps)
    if method == "loss":
        keys = _check_rows(losses, targets.size, "losses", ndim=1)
    else:
        if rng is None:
            raise ValueError("method 'random' needs rng, got None")
        # Keeping the m smallest of i.i.d. uniform keys is a uniform draw without replacement.
        keys = rng.random(targets.size)
    return _smallest_per_item(targets, take, counts, keys)


def _check_rows(values: np.ndarray | None, n: int, name: str, ndim: int) -> np.ndarray:
    """Checks that ``values`` has one row per candidate."""
    if values is None:
        raise ValueError(f"this selection method needs {name}, got None")
    values = np.asarray(values)
    if values.ndim != ndim or values.shape[0] != n:
        raise ValueError(f"{name} must have {ndim} dims and {n} rows, got shape {values.shape}")
    return values


def _select_herding(
    targets: np.ndarray, take: np.ndarray, counts: np.ndarray, reps: np.ndarray
) -> np.ndarray:
    """Runs herding item by item on candidates grouped once by a stable sort."""
    order = np.argsort(targets, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    chosen: list[np.ndarray] = []
    for item in np.flatnonzero(take):
        members = order[starts[item] : starts[item + 1]]
        if members.size == 1:
            chosen.append(members)  # herding on one row always picks it
            continue
        chosen.append(members[herding_order(reps[members], take[item])])
    if not chosen:
        return np.zeros(0, dtype=np.int64)
    return np.concatenate(chosen).astype(np.int64)


def _smallest_per_item(
    targets: np.ndarray, take: np.ndarray, counts: np.ndarray, keys: np.ndarray
) -> np.ndarray:
    """Keeps the ``take[y]`` candidates with the smallest key for each item ``y``."""
    order = np.lexsort((keys, targets))  # by item, then key; stable on equal keys
    sorted_targets = targets[order]
    starts = np.concatenate([[0], np.cumsum(counts)])
    rank = np.arange(order.size) - starts[sorted_targets]
    return order[rank < take[sorted_targets]].astype(np.int64)


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

    buffer = io.BytesIO()
    np.savez(buffer, inputs=inputs.astype(np.int32), targets=targets.astype(np.int32))
    payload = buffer.getvalue()
    record = {
        **_json_roundtrip(dict(metadata)),
        "count": int(targets.size),
        "maxlen": int(inputs.shape[1]),
        "format": _FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    npz_path, json_path = _paths(path)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.unlink(missing_ok=True)
    _write_atomic(npz_path, payload)
    _write_atomic(json_path, (json.dumps(record, indent=2, sort_keys=True) + "\n").encode())
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
    for p in (json_path, npz_path):
        if not p.is_file():
            raise ExemplarFileError(p, "file is missing (never written or the save did not finish)")
    try:
        metadata = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ExemplarFileError(json_path, f"unreadable metadata ({e})") from e
    if not isinstance(metadata, dict):
        raise ExemplarFileError(json_path, "metadata is not a JSON object")
    absent = [k for k in (*REQUIRED_METADATA, *_COMPUTED_METADATA) if k not in metadata]
    if absent or metadata["format"] != _FORMAT:
        raise ExemplarFileError(json_path, f"not an exemplar record (missing {absent})")

    payload = npz_path.read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    if digest != metadata["sha256"]:
        raise ExemplarFileError(
            npz_path, f"checksum mismatch: sha256 {digest}, metadata says {metadata['sha256']}"
        )
    for key, want in _json_roundtrip(dict(expected or {})).items():
        if metadata.get(key) != want:
            raise ExemplarFileError(
                json_path, f"{key} is {metadata.get(key)!r}, expected {want!r} (stale file?)"
            )

    inputs, targets = _read_arrays(npz_path, payload)
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


def _read_arrays(npz_path: Path, payload: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Parses the checksummed bytes without pickle."""
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            if sorted(data.files) != ["inputs", "targets"]:
                raise ExemplarFileError(npz_path, f"unexpected arrays {sorted(data.files)}")
            return data["inputs"], data["targets"]
    except ExemplarFileError:
        raise
    except (OSError, ValueError, KeyError) as e:
        raise ExemplarFileError(npz_path, f"unreadable npz ({e})") from e


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Writes ``data`` to a temporary file beside ``path`` and renames it into place."""
    with atomic_path(str(path)) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
