"""A plug-in's own options: declared once in the plug-in's file, each one a flag of main.py.

A method, learner or backbone lists its `Option`s in its ``options`` class attribute;
`ader_tf.plugins` collects them, makes them flags grouped by plug-in, validates them and
refuses one given to a plug-in the run does not use. Nothing else lists them again.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Option:
    """One option of a plug-in.

    Attributes:
        name: The flag's (and the config's) name, prefixed by its plug-in's name.
        default: Its value when not given; runs that leave it at the default fingerprint
            as if it did not exist, so adding an option never orphans earlier runs.
        help: The flag's help.
        choices: The values allowed, or None for any value of the default's type.
        check: Returns whether a value is valid; None accepts every value of the type.
        wanted: Completes "--NAME must be ..." when ``check`` fails (e.g. "positive").
    """

    name: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    check: Callable[[Any], bool] | None = None
    wanted: str = ""

    @property
    def kind(self) -> type:
        """The type of the flag's value."""
        return type(self.default)

    def validate(self, value: Any) -> None:
        """Raises ValueError naming the flag, what it must be and the value received."""
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"--{self.name} must be one of {self.choices}, got {value!r}")
        if self.check is not None and not self.check(value):
            raise ValueError(f"--{self.name} must be {self.wanted}, got {value!r}")


def positive(name: str, default: Any, help: str) -> Option:
    """An option that must be > 0."""
    return Option(name, default, help, check=lambda v: v > 0, wanted="positive")


def non_negative(name: str, default: Any, help: str) -> Option:
    """An option that must be >= 0."""
    return Option(name, default, help, check=lambda v: v >= 0, wanted=">= 0")


def in_range(name: str, default: float, help: str, low: float, high: float,
             high_included: bool = True) -> Option:
    """An option in [low, high] (or [low, high) with ``high_included=False``)."""
    closing = "]" if high_included else ")"
    return Option(
        name, default, help,
        check=lambda v: low <= v <= high if high_included else low <= v < high,
        wanted=f"in [{low:g}, {high:g}{closing}",
    )
