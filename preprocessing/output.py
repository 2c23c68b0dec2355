"""Writing period files all-or-nothing: into a staging folder beside the output, then moved."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator, Sequence

import numpy as np
from numpy.dtypes import StringDType

from preprocessing.state import ITEM_COUNTS_FILE, ITEMS_FILE, STATE_FILE

STATS_FILE = "dataset.json"
# Moved last, in this order: the stats describe the folder once every data file is in place,
# and the append state is what a later --append trusts.
_LAST = (STATS_FILE, STATE_FILE)
_OUTPUT_FILE = re.compile(
    r"period_\d+\.txt|train\.txt|test\.txt|"
    + "|".join(re.escape(name) for name in (ITEMS_FILE, ITEM_COUNTS_FILE, STATE_FILE))
)
_LINES_PER_WRITE = 1 << 20


def write_pairs(path: str, session: np.ndarray, item: np.ndarray) -> None:
    """Writes one `<session> <item>` line per click, like the original's '%d %d\\n'."""
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for lo in range(0, len(session), _LINES_PER_WRITE):
            part = slice(lo, lo + _LINES_PER_WRITE)
            line = np.strings.add(session[part].astype(StringDType()), " ")
            line = np.strings.add(line, item[part].astype(StringDType()))
            f.write("\n".join(line.tolist()))
            f.write("\n")


def write_json(path: str, data: dict) -> None:
    """Writes `data` as indented JSON."""
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.write("\n")


def read_json(path: str) -> dict:
    """Reads a JSON file written by `write_json`."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@contextlib.contextmanager
def staging(output_dir: str) -> Iterator[str]:
    """A fresh folder beside `output_dir` (same file system, so moves are renames).

    It is removed when the block exits, whether the files were committed or not.
    """
    output_dir = os.path.abspath(output_dir)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    # Not tempfile.mkdtemp: its 0700 mode would stick to a new output folder made by renaming.
    folder = os.path.join(parent, f".{os.path.basename(output_dir)}.tmp-{uuid.uuid4().hex}")
    os.mkdir(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def commit(folder: str, output_dir: str, names: Sequence[str], replace_all: bool = True) -> None:
    """Moves `names` from the staging `folder` into `output_dir`.

    A new output folder is one rename. Into an existing folder, each file is replaced by an
    atomic rename. With `replace_all` (a full run), output files of an earlier run that this
    run did not produce are removed (a loader counting period files would otherwise read a
    stale one); appending keeps them. The stats file and then the append state move last.
    Other files in the folder are left alone.
    """
    output_dir = os.path.abspath(output_dir)
    if not os.path.exists(output_dir):
        os.rename(folder, output_dir)
        return
    if not os.path.isdir(output_dir):
        raise NotADirectoryError(f"{output_dir}: exists and is not a folder")
    for name in names:
        if name not in _LAST:
            os.replace(os.path.join(folder, name), os.path.join(output_dir, name))
    if replace_all:
        for name in os.listdir(output_dir):
            if _OUTPUT_FILE.fullmatch(name) and name not in names:
                os.remove(os.path.join(output_dir, name))
    for name in _LAST:
        if name in names:
            os.replace(os.path.join(folder, name), os.path.join(output_dir, name))
