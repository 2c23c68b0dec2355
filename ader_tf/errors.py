"""The base of every error a user can act on, and the one-line form the command lines print.

Each command line (``main.py``, ``python -m preprocessing``, ``python -m ader_tf.recommend``,
``python -m ader_tf.report``) catches `AderError` once, prints ``error: <one line>`` and exits
with the error's `exit_code`; anything else is a bug and keeps its traceback.

Messages follow one style: ``PATH: problem`` or ``PATH:LINE: problem`` for a file,
```name` must be ..., got ...`` for an argument and ``--flag must be ..., got ...`` for a flag.

This module imports nothing beyond the standard library, so the preprocessing package can use
it without loading TensorFlow.
"""

from __future__ import annotations

import sys
from typing import ClassVar, TextIO


def one_line(message: object) -> str:
    """``str(message)`` with every run of whitespace, line breaks included, as one space."""
    return " ".join(str(message).split())


# main.py's exit status when another process is running the same results folder: a caller
# that starts runs (benchmarks/reproduce.py) passes on to its next run.
RUN_IN_USE = 4


class AderError(Exception):
    """A problem the user can act on: bad input, a damaged or foreign file, a lost worker.

    Subclasses keep a built-in second base where callers catch one (``ValueError``,
    ``FileNotFoundError``, ...), and set `exit_code`.

    Attributes:
        exit_code: The command lines' exit status for it: 2 bad input or state (the default),
            1 training diverged, 3 a worker of a multi-worker run was lost, `RUN_IN_USE` (4)
            another process is running the same run.
    """

    exit_code: ClassVar[int] = 2

    def one_line(self) -> str:
        """The message on one line (TensorFlow and pandas messages can span several)."""
        return one_line(self)


def print_error(error: AderError, stream: TextIO | None = None) -> int:
    """Prints ``error: <one line>`` to ``stream`` (stderr) and returns the error's exit code."""
    print(f"error: {error.one_line()}", file=stream or sys.stderr)
    return error.exit_code
