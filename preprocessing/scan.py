"""Byte-level, vectorised splitting of a delimited text buffer into lines and fields.

Why not `pandas.read_csv` alone: its C parser fills a missing trailing field with '' (so a line
with too few fields looks like one with an empty last field) and its int64 conversion accepts
'5.0', '+5' or '1e3'. Working on the raw bytes with numpy lets every line be checked exactly,
reports exact 1-based line numbers, and never creates one Python object per field.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from preprocessing.errors import RawDataError

NEWLINE, CR, QUOTE = 10, 13, 34
_ZERO = 48


@dataclasses.dataclass(frozen=True)
class Lines:
    """Well-formed lines of a buffer, each with exactly `fields - 1` separators.

    Attributes:
        buf: The bytes (uint8) the positions refer to.
        starts: Offset of each line's first byte.
        ends: Offset one past each line's last byte (line break excluded).
        numbers: 1-based line number of each line in the file.
        seps: (lines, fields - 1) offsets of the separators.
    """

    buf: np.ndarray
    starts: np.ndarray
    ends: np.ndarray
    numbers: np.ndarray
    seps: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def field(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Start and end offsets of field `index` (0-based) on every line."""
        starts = self.starts if index == 0 else self.seps[:, index - 1] + 1
        ends = self.ends if index == self.seps.shape[1] else self.seps[:, index]
        return starts, ends

    def text(self, row: int) -> str:
        """The text of line `row` (an index into these lines), for error messages."""
        return line_text(self.buf, int(self.starts[row]), int(self.ends[row]))

    def error(self, path: str, row: int, reason: str) -> RawDataError:
        """A RawDataError pointing at line `row`."""
        return RawDataError(path, int(self.numbers[row]), self.text(row), reason)


def line_text(buf: np.ndarray, start: int, end: int) -> str:
    """Decodes one line for an error message (undecodable bytes shown as U+FFFD)."""
    return buf[start:end].tobytes().decode("utf-8", errors="replace")


def _special_positions(buf: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Offsets of the bytes equal to any of `values`."""
    top = max(values)
    if top < ord("0"):
        # ',' and control bytes: one comparison narrows the search to the few bytes below '0'
        # (nonzero is the costly step, so it runs once rather than once per value).
        candidates = np.flatnonzero(buf <= top)
        found = buf[candidates]
        return candidates[np.logical_or.reduce([found == value for value in values])]
    return np.flatnonzero(np.logical_or.reduce([buf == value for value in values]))


def _line_of(positions: np.ndarray, raw_ends: np.ndarray) -> np.ndarray:
    """Index of the line holding each byte position (`raw_ends` are the line-break offsets)."""
    return np.searchsorted(raw_ends, positions, side="left")


def split_lines(
    buf: np.ndarray,
    first_number: int,
    sep: str,
    fields: int,
    path: str,
    skip_blank: bool = False,
    forbid_quotes: bool = False,
) -> tuple[Lines, RawDataError | None]:
    """Splits `buf` into lines and checks that each has exactly `fields` fields.

    A carriage return is accepted only right before a line feed (Windows line breaks): Python's
    text mode, which the original reads with, would take a lone one as a line break of its own.

    Args:
        buf: uint8 bytes holding whole lines (the last line may lack its line break).
        first_number: 1-based line number of the first line in `buf`.
        sep: The one-character field separator.
        fields: The number of fields every line must have.
        path: The file, for error messages.
        skip_blank: Drop empty lines instead of rejecting them.
        forbid_quotes: Reject lines holding a double quote (quoting is not interpreted).

    Returns:
        The well-formed lines before the first malformed one, and an error for that one (None if
        every line is well formed). Callers check the values on the returned lines first, so that
        the error they raise is always the first bad line of the file.
    """
    special = _special_positions(buf, (NEWLINE, CR, ord(sep), QUOTE))
    special_bytes = buf[special]
    raw_ends = special[special_bytes == NEWLINE]
    if len(buf) and buf[-1] != NEWLINE:
        raw_ends = np.append(raw_ends, len(buf))
    starts = np.empty_like(raw_ends)
    starts[:1] = 0
    starts[1:] = raw_ends[:-1] + 1
    ends = raw_ends.copy()
    crlf = (ends > starts) & (buf[np.maximum(ends - 1, 0)] == CR)
    ends -= crlf

    sep_positions = special[special_bytes == ord(sep)]
    seps_before_end = np.searchsorted(sep_positions, raw_ends)
    counts = np.diff(seps_before_end, prepend=0)
    blank = ends == starts
    bad_count = counts != fields - 1
    if skip_blank:
        bad_count &= ~blank
    bad = bad_count.copy()
    cr_positions = special[special_bytes == CR]
    if len(cr_positions) != crlf.sum():
        stray_cr = np.setdiff1d(cr_positions, ends[crlf], assume_unique=True)
        bad[_line_of(stray_cr, raw_ends)] = True
    if forbid_quotes:
        bad[_line_of(special[special_bytes == QUOTE], raw_ends)] = True

    error = None
    stop = len(raw_ends)
    if bad.any():
        stop = int(np.argmax(bad))
        line = line_text(buf, int(starts[stop]), int(ends[stop]))
        if bad_count[stop]:
            reason = f"expected {fields} fields separated by {sep!r}, found {counts[stop] + 1}"
        elif CR in buf[starts[stop] : ends[stop]]:
            reason = "carriage return inside a line"
        else:
            reason = "quoted fields are not supported"
        error = RawDataError(path, first_number + stop, line, reason)

    keep = np.arange(stop)
    if skip_blank and blank[:stop].any():
        keep = keep[~blank[:stop]]
    seps = sep_positions[: int(seps_before_end[stop - 1]) if stop else 0].reshape(-1, fields - 1)
    if len(keep) == len(starts):  # the common case: no copies
        return Lines(buf, starts, ends, first_number + keep, seps), error
    return Lines(buf, starts[keep], ends[keep], first_number + keep, seps), error


def field_windows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The `width` bytes from each start, as a (len(starts), width) uint8 array.

    One row-gather from a sliding-window view is much faster than `width` separate gathers.
    Bytes past the end of `buf` read as 0 (never a digit nor a separator).
    """
    overhang = int(starts.max(initial=0)) + width - len(buf)
    if overhang > 0:
        buf = np.concatenate([buf, np.zeros(overhang, dtype=np.uint8)])
    return np.lib.stride_tricks.sliding_window_view(buf, width)[starts]


def parse_digits(
    buf: np.ndarray, starts: np.ndarray, ends: np.ndarray, max_width: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reads fields made only of ASCII digits ('0'..'9', at least one, at most `max_width`).

    Returns:
        (value, width, ok): int64 values, int64 field widths, and a mask of the fields that are
        well-formed (the value of the others is meaningless).
    """
    width = ends - starts
    ok = (width >= 1) & (width <= max_width)
    value = np.zeros(len(starts), dtype=np.int64)
    columns = min(max_width, int(width.max(initial=0)))
    windows = field_windows(buf, starts, columns)
    for k in range(columns):
        active = k < width
        digit = windows[:, k].astype(np.int64) - _ZERO
        ok &= ~active | ((digit >= 0) & (digit <= 9))
        value = np.where(active, value * 10 + digit, value)
    return value, width, ok
