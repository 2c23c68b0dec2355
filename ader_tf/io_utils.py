"""Atomic file writing: a crash or kill never leaves a half-written output behind.

What a kill leaves is a temporary under a name of its own, which a resumed run removes
(`remove_unfinished_writes`).

Arrays a resumed run relies on are written with a checksum beside them
(`save_checked_npz`), so that a damaged file is named rather than silently reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ader_tf.errors import AderError, one_line

# Every temporary name an atomic write in a run folder uses: `atomic_path`'s files, the
# checkpoint keeper's ".tmp-epoch_N" folders, and the export's ".cycle_N.tmp-..." staging and
# ".cycle_N.old-..." retired folders. A kill between creating one and renaming it leaves it.
TEMPORARY_PREFIX = ".tmp-"
_UNFINISHED_WRITE = re.compile(r"^\.(tmp-|.+\.tmp-|.+\.old-)")


def is_unfinished_write(name: str) -> bool:
    """True for a file or folder name that only an atomic write in progress gives."""
    return bool(_UNFINISHED_WRITE.match(name))


def remove_unfinished_writes(root: str) -> list[str]:
    """Removes what killed atomic writes left anywhere under ``root``; returns their paths.

    Only for a folder no other process is writing to: the temporaries of a write in progress
    look the same. Nothing finished is touched: a finished write has renamed its temporary.
    """
    removed = []
    for folder, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            if is_unfinished_write(name):
                path = os.path.join(folder, name)
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.remove(path)
                removed.append(path)
        dirs[:] = [d for d in dirs if not is_unfinished_write(d)]
    return sorted(removed)


@contextlib.contextmanager
def atomic_path(path: str) -> Iterator[str]:
    """Yields a temporary path in the same folder; renames it onto ``path`` on success.

    The rename is atomic on POSIX file systems, so readers see either the old file or the
    complete new one. On an exception the temporary file is removed and ``path`` is untouched.
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX + os.path.basename(path) + "-", dir=folder)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def file_lock(path: str) -> Iterator[None]:
    """Holds an exclusive lock on the file ``path`` (created if missing) until the block
    ends; the system releases it if the process dies, so a killed holder blocks nobody."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        fcntl.lockf(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.lockf(f, fcntl.LOCK_UN)


class LockHeldError(AderError, BlockingIOError):
    """Another holder has the lock `held_or_refused` asked for."""


@contextlib.contextmanager
def held_or_refused(path: str) -> Iterator[None]:
    """Holds an exclusive lock on the file ``path`` (created if missing) for the block, or
    raises `LockHeldError` at once if another holder has it.

    An ``flock`` (not `file_lock`'s ``lockf``): it belongs to the open file, so two holders
    in one process exclude each other as two processes do; the system releases it when its
    process dies, so a killed holder refuses nobody.
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "a") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as e:
            raise LockHeldError(f"{path}: held by another process") from e
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def write_text_atomic(path: str, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (UTF-8)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: str, obj: Any) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def read_json(path: str) -> Any:
    """Reads a JSON file, naming the file in the error if it is not valid JSON."""
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid JSON ({one_line(e)})") from e


# === Checksummed arrays ===


class DamagedFileError(AderError, ValueError):
    """A file a run wrote is missing, damaged or does not hold what it should.

    Attributes:
        path: The file.
        problem: What is wrong with it.
    """

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(str(path)) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def sidecar_path(npz_path: str | os.PathLike[str]) -> Path:
    """The ``.json`` beside a ``.npz`` that records its checksum."""
    return Path(npz_path).with_suffix(".json")


def save_checked_npz(
    npz_path: str | os.PathLike[str], arrays: Mapping[str, np.ndarray], record: Mapping[str, Any]
) -> None:
    """Writes ``arrays`` to ``npz_path`` and ``record`` plus the npz's sha256 to its sidecar.

    The old sidecar is removed first and the new one written last, each file atomically, so a
    sidecar on disk means its npz is complete and a kill at any point leaves no pair that
    passes `load_checked_npz` with the wrong arrays. No pickle is involved.
    """
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    sidecar = sidecar_path(npz_path)
    Path(npz_path).parent.mkdir(parents=True, exist_ok=True)
    sidecar.unlink(missing_ok=True)
    write_bytes_atomic(npz_path, payload)
    text = json.dumps({**record, "sha256": hashlib.sha256(payload).hexdigest()}, indent=2,
                      sort_keys=True)
    write_bytes_atomic(sidecar, (text + "\n").encode())


def load_checked_npz(
    npz_path: str | os.PathLike[str], sidecar_required: bool = True
) -> tuple[dict[str, np.ndarray], dict[str, Any] | None]:
    """Reads what `save_checked_npz` wrote, checking the npz bytes against the sidecar.

    Args:
        npz_path: The ``.npz`` file.
        sidecar_required: False reads an npz without a sidecar as it is (files written before
            sidecars existed), reporting only what cannot be parsed.

    Returns:
        (arrays by name, the sidecar's record or None where there is none).

    Raises:
        DamagedFileError: naming the file and the problem: missing, unreadable sidecar,
            checksum mismatch or an npz that cannot be parsed.
    """
    npz_path, sidecar = Path(npz_path), sidecar_path(npz_path)
    record = None
    if sidecar.is_file() or sidecar_required:
        record = _read_sidecar(sidecar)
    if not npz_path.is_file():
        raise DamagedFileError(npz_path, "file is missing (never written or the save did not "
                                         "finish)")
    payload = npz_path.read_bytes()
    if record is not None:
        digest = hashlib.sha256(payload).hexdigest()
        if digest != record.get("sha256"):
            raise DamagedFileError(npz_path, f"checksum mismatch: sha256 {digest}, metadata says "
                                             f"{record.get('sha256')}")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise DamagedFileError(npz_path, f"unreadable npz ({one_line(e)})") from e
    return arrays, record


def _read_sidecar(sidecar: Path) -> dict[str, Any]:
    """The JSON object of a sidecar, or DamagedFileError."""
    if not sidecar.is_file():
        raise DamagedFileError(sidecar, "file is missing (never written or the save did not "
                                        "finish)")
    try:
        record = json.loads(sidecar.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedFileError(sidecar, f"unreadable metadata ({one_line(e)})") from e
    if not isinstance(record, dict):
        raise DamagedFileError(sidecar, "metadata is not a JSON object")
    return record
