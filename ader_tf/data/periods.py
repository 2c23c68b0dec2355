"""Reading and validating period files (``<session_id> <item_id>`` per line).

A period file is what the preprocessing writes: one click per line, clicks in time order.
Sessions are grouped as the original does: in order of the session's first click, items in
file order.
"""

from __future__ import annotations

import dataclasses
import glob
import io
import os
import re

import numpy as np
import pandas as pd

from ader_tf.errors import AderError


class PeriodFileError(AderError, ValueError):
    """A period file is missing, empty or has a malformed line."""


@dataclasses.dataclass(frozen=True)
class Sessions:
    """Sessions as one flat item array plus offsets (session k = items[offsets[k]:offsets[k+1]]).

    Attributes:
        items: int32 [num_clicks] item ids, sessions concatenated.
        offsets: int64 [num_sessions + 1] start of each session in ``items``.
    """

    items: np.ndarray
    offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        """Number of clicks of each session."""
        return np.diff(self.offsets)

    @property
    def num_clicks(self) -> int:
        return int(self.offsets[-1])

    def select(self, keep: np.ndarray) -> Sessions:
        """Returns the sessions where boolean ``keep`` [num_sessions] is true, order kept."""
        lengths = self.lengths[keep]
        session_of_click = np.repeat(np.arange(len(self)), self.lengths)
        items = self.items[keep[session_of_click]]
        return Sessions(items=items, offsets=_offsets_from_lengths(lengths))

    def as_lists(self) -> list[list[int]]:
        """The sessions as Python lists (for tests and small data)."""
        return [self.items[a:b].tolist() for a, b in zip(self.offsets[:-1], self.offsets[1:])]

    @staticmethod
    def concatenate(parts: list[Sessions]) -> Sessions:
        """Concatenates session lists, keeping each part's sessions separate."""
        if not parts:
            return Sessions(np.zeros(0, np.int32), np.zeros(1, np.int64))
        items = np.concatenate([p.items for p in parts]).astype(np.int32)
        lengths = np.concatenate([p.lengths for p in parts])
        return Sessions(items=items, offsets=_offsets_from_lengths(lengths))


def _offsets_from_lengths(lengths: np.ndarray) -> np.ndarray:
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return offsets


def group_sessions(session_ids: np.ndarray, item_ids: np.ndarray) -> Sessions:
    """Groups clicks by session: sessions in order of first appearance, clicks in file order."""
    codes, uniques = pd.factorize(session_ids, sort=False)
    order = np.argsort(codes, kind="stable")
    lengths = np.bincount(codes, minlength=len(uniques))
    return Sessions(
        items=np.asarray(item_ids)[order].astype(np.int32),
        offsets=_offsets_from_lengths(lengths),
    )


def read_period_clicks(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Reads a period file into (session_ids int64, item_ids int32), validating every line.

    Raises:
        PeriodFileError: naming the file, the 1-based line number and the offending text for a
            line that is not two positive integers separated by one space (session ids below
            2**63, item ids below 2**31); also for a missing or empty file.
    """
    if not os.path.isfile(path):
        raise PeriodFileError(f"{path}: period file not found")
    with open(path, "rb") as f:
        data = f.read()
    if not data:
        raise PeriodFileError(f"{path}: period file is empty")
    # pandas' integer parsing also takes '+5', '5.0' or a trailing vertical tab: only digits,
    # spaces and line breaks may reach it.
    if not _PERIOD_BYTES[np.frombuffer(data, dtype=np.uint8)].all():
        _raise_first_bad_line(path)
    try:
        frame = pd.read_csv(
            io.BytesIO(data), sep=" ", header=None, names=["session", "item"], dtype=np.int64,
            engine="c", skip_blank_lines=False, na_filter=False,
        )
        sessions = frame["session"].to_numpy()
        items = frame["item"].to_numpy()
    except (ValueError, OverflowError, pd.errors.ParserError):
        _raise_first_bad_line(path)
        raise  # _raise_first_bad_line always raises; this keeps type checkers content.
    bad = (sessions <= 0) | (items <= 0) | (items > np.iinfo(np.int32).max)
    if bad.any():
        _raise_first_bad_line(path)
    return sessions, items.astype(np.int32)


_LINE = re.compile(rb"^([0-9]+) ([0-9]+)\r?$")
_PERIOD_BYTES = np.zeros(256, dtype=bool)
_PERIOD_BYTES[list(b"0123456789 \r\n")] = True


def _raise_first_bad_line(path: str) -> None:
    """Scans ``path`` line by line and raises a PeriodFileError for the first bad line."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            line = raw.rstrip(b"\n")
            match = _LINE.match(line)
            text = line.decode("utf-8", errors="replace")
            if match is None:
                raise PeriodFileError(
                    f"{path}:{number}: expected '<session_id> <item_id>' (two positive "
                    f"integers separated by one space), got {text!r}"
                )
            session, item = int(match.group(1)), int(match.group(2))
            if not (0 < session <= np.iinfo(np.int64).max
                    and 0 < item <= np.iinfo(np.int32).max):
                raise PeriodFileError(
                    f"{path}:{number}: ids must be positive, sessions below 2**63 and items "
                    f"below 2**31, got {text!r}"
                )
    raise PeriodFileError(f"{path}: could not be parsed as a period file")


def read_period_sessions(path: str) -> Sessions:
    """Reads and validates a period file and groups its clicks into sessions."""
    session_ids, item_ids = read_period_clicks(path)
    return group_sessions(session_ids, item_ids)


def list_period_files(period_dir: str) -> list[str]:
    """Returns ``period_0.txt .. period_K.txt`` of a folder, checking that none is missing."""
    found = glob.glob(os.path.join(period_dir, "period_*.txt"))
    numbers = sorted(
        int(m.group(1))
        for m in (re.fullmatch(r"period_(\d+)\.txt", os.path.basename(p)) for p in found)
        if m
    )
    if not numbers:
        raise PeriodFileError(f"{period_dir}: no period_<i>.txt files found")
    if numbers != list(range(len(numbers))):
        missing = sorted(set(range(max(numbers) + 1)) - set(numbers))
        raise PeriodFileError(
            f"{period_dir}: period files are not numbered 0..K; missing {missing}"
        )
    return [os.path.join(period_dir, f"period_{i}.txt") for i in numbers]
