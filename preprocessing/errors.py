"""Exceptions raised by the preprocessing package."""

from __future__ import annotations


class PreprocessingError(Exception):
    """A run cannot produce period files (bad configuration, or no data left after filtering)."""


class RawDataError(PreprocessingError):
    """A raw click log is missing or malformed.

    The message names the file, the 1-based line number and the offending text, so that the
    command line can print it as it is, without a traceback.

    Attributes:
        path: The raw file.
        line_number: 1-based line number of the offending line, or None for the file as a whole.
        text: The offending line, without its line break ('' for the file as a whole).
        reason: What is wrong with it.
    """

    def __init__(self, path: str, line_number: int | None, text: str, reason: str) -> None:
        self.path = path
        self.line_number = line_number
        self.text = text
        self.reason = reason
        if line_number is None:
            message = f"{path}: {reason}"
        else:
            message = f"{path}, line {line_number}: {reason}: {text!r}"
        super().__init__(message)
