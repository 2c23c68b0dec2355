"""What a method tunes: small declarative ranges of its options, declared in its own file.

A method lists its search space in its ``search_space`` class attribute (a tuple of
`FloatRange` and `Choice`), each naming one of its own options or a Config field it reads
(``lambda_``); ``python -m ader_tf.tune`` turns them into Optuna suggestions (`suggest`). The
exemplar budget (``--exemplar_size``) is the memory every method gets, so it is never tuned;
nor is anything that says what or where a run is (`NOT_TUNABLE`).

This module imports neither TensorFlow nor Optuna: `suggest` is handed an Optuna trial.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any

# Fields a search space may not name: the memory budget (the same for every method), what
# chooses the method, the data and the seed, and what only says where or how a run reports.
NOT_TUNABLE = frozenset({
    "exemplar_size", "method", "finetune", "dropout", "ewc", "joint", "disable_distillation",
    "dataset", "save_dir", "data_dir", "results_dir", "cycles", "random_seed", "progress",
    "export_saved_models", "export_k", "distribution_strategy", "collective_timeout",
    "test_batch", "table_growth", "warm_start", "model",
})


@dataclasses.dataclass(frozen=True)
class FloatRange:
    """A float option drawn from [low, high], on a log scale with ``log``."""

    name: str
    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.low) and math.isfinite(self.high) and self.low < self.high):
            raise ValueError(f"`{self.name}` range must have finite low < high, got "
                             f"[{self.low}, {self.high}]")
        if self.log and self.low <= 0:
            raise ValueError(f"`{self.name}` log range must have low > 0, got {self.low}")

    @property
    def ends(self) -> tuple[float, float]:
        """The two extreme values a trial can draw."""
        return self.low, self.high

    def suggest(self, trial: Any) -> float:
        """The trial's value (``trial``: an ``optuna.Trial``)."""
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)


@dataclasses.dataclass(frozen=True)
class Choice:
    """An option drawn from a few values (bool, int, float or str)."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) < 2 or len(set(self.choices)) != len(self.choices):
            raise ValueError(f"`{self.name}` needs two or more distinct choices, got "
                             f"{self.choices!r}")

    @property
    def ends(self) -> tuple[Any, ...]:
        """Every value a trial can draw."""
        return self.choices

    def suggest(self, trial: Any) -> Any:
        """The trial's value (``trial``: an ``optuna.Trial``)."""
        return trial.suggest_categorical(self.name, list(self.choices))


Param = FloatRange | Choice


def suggest(space: Iterable[Param], trial: Any) -> dict[str, Any]:
    """One value per parameter of ``space``, drawn by ``trial`` (an ``optuna.Trial``)."""
    return {param.name: param.suggest(trial) for param in space}


def check_space(method: Any, field_names: Iterable[str]) -> None:
    """Refuses a method's search space that names what it cannot tune.

    Args:
        method: The `Method` class.
        field_names: The Config fields a space may name (besides the method's own options).

    Raises:
        ValueError: naming the method and the parameter.
    """
    own = {option.name for option in method.options}
    allowed = (set(field_names) - NOT_TUNABLE) | own
    names = [param.name for param in method.search_space]
    if len(set(names)) != len(names):
        raise ValueError(f"method {method.name}: search space names a parameter twice: {names}")
    for name in names:
        if name in NOT_TUNABLE:
            raise ValueError(f"method {method.name}: `{name}` is never tuned (the memory budget, "
                             "the method, the data or where a run goes)")
        if name not in allowed:
            raise ValueError(f"method {method.name}: search space names `{name}`, which is "
                             "neither its option nor a Config field")
