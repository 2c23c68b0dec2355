"""Exceptions raised by the preprocessing package."""

from __future__ import annotations

from ader_tf.errors import AderError


class PreprocessingError(AderError):
    """A run cannot produce period files (bad configuration, or no data left after filtering)."""


class RawDataError(PreprocessingError):
    """A raw click log is missing or malformed.

    The message names the file, where in it the problem is (a 1-based line number, or a Parquet
    row group and row) and the offending text, so that the command line can print it as it is,
    without a traceback.

    Attributes:
        path: The raw file.
        line_number: 1-based line number of the offending line; with `row_group`, the row within
            that row group (0-based, as pyarrow counts); None for the file as a whole.
        text: The offending line or value, without its line break ('' for the file as a whole);
            None when the message is clear without it (it is then left out).
        reason: What is wrong with it.
        row_group: The Parquet row group (0-based, as pyarrow counts), else None.
    """

    def __init__(
        self,
        path: str,
        line_number: int | None,
        text: str | None,
        reason: str,
        row_group: int | None = None,
    ) -> None:
        self.path = path
        self.line_number = line_number
        self.text = text
        self.reason = reason
        self.row_group = row_group
        # `PATH:LINE: reason`, as the period files' errors; Parquet has no lines.
        if row_group is not None:
            row = "" if line_number is None else f", row {line_number}"
            message = f"{path}: row group {row_group}{row}: {reason}"
        elif line_number is not None:
            message = f"{path}:{line_number}: {reason}"
        else:
            message = f"{path}: {reason}"
        if (row_group is not None or line_number is not None) and text is not None:
            message += f": {text!r}"
        super().__init__(message)


class SettingMismatchError(PreprocessingError):
    """A setting given for an append differs from the one the output folder was written with.

    Attributes:
        name: The setting (a `PreprocessConfig` or `ClickLogOptions` field, as the flag).
        given: The value given, as shown to a person.
        stored: The stored value, as shown to a person.
        path: The state file holding the stored value.
    """

    def __init__(self, name: str, given: str, stored: str, path: str) -> None:
        self.name = name
        self.given = given
        self.stored = stored
        self.path = path
        super().__init__(f"{name}={given} differs from the stored {stored} in {path}")
