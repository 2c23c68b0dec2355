"""The method interface: what a continual method keeps between cycles and trains with."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ader_tf.options import Option
from ader_tf.random_streams import RandomStreams
from ader_tf.search_space import Param

# A method's declaration (name, options, checks) is read without TensorFlow, as by `--help`:
# what needs it (the objectives) is imported inside the functions that build them.
if TYPE_CHECKING:
    from ader_tf.objectives import Objective


class KeptObjects:
    """What methods build once and reuse across cycles, held by the cycle loop, not by them.

    A method that made a new objective every cycle would retrace the training step every
    cycle; one that kept its objective itself would also keep the teacher inside it, and
    could silently distil from an old model. Here the loop keeps each object together with
    the teacher it was built with, and builds it again only when the teacher is a new object
    (the loop refills one teacher object with the last cycle's weights every cycle, and makes
    a new one only when the item tables grow).
    """

    def __init__(self) -> None:
        self._objects: dict[str, tuple[Any, Any]] = {}

    def get(self, name: str, build: Callable[[], Any], teacher: Any) -> Any:
        """The object kept as ``name``, built by ``build()`` unless built with ``teacher``."""
        held = self._objects.get(name)
        if held is None or held[0] is not teacher:
            held = (teacher, build())
            self._objects[name] = held
        return held[1]


@dataclasses.dataclass
class CycleContext:
    """What a method sees of one cycle (built by the cycle loop).

    Attributes:
        cycle: The cycle number (1-based).
        config: The run's `Config`.
        model: The student (`SessionRecommender`) of this cycle.
        data: This cycle's `CycleData` (train, valid, test, max_item).
        previous: The last finished cycle's record (``cycle``, ``max_item``, ``best_epoch``),
            None in the first cycle.
        exemplars: The exemplar `Examples` kept after the previous cycle; in `after_cycle`,
            the ones just kept after this cycle. None for methods that keep none.
        exemplar_origin: In `after_cycle`: for each kept exemplar, its row in the previous
            exemplar set, or -1 for a row new in this cycle.
        teacher: For a method with ``uses_teacher``, from the second cycle on: the previous
            cycle's best model, frozen, refilled by the loop once per cycle. None otherwise.
        weight: A scalar variable holding this cycle's `Method.weight` (set by the loop
            before `objective` is asked); objectives that keep it see each cycle's value.
        state_path: ``state_path(cycle, name)`` is where a method keeps a file of a cycle.
        kept: The loop's `KeptObjects`; see `keep`.
    """

    cycle: int
    config: Any
    model: Any
    data: Any
    previous: dict[str, Any] | None
    exemplars: Any = None
    exemplar_origin: np.ndarray | None = None
    teacher: Any = None
    weight: Any = None
    state_path: Callable[[int, str], str] | None = None
    kept: KeptObjects | None = None

    def seed(self, purpose: str, *index: int) -> int:
        """A TensorFlow seed for one random choice of this cycle, from the stream named
        ``purpose`` (see `ader_tf.random_streams`): a method names its own purposes."""
        return RandomStreams(self.config.random_seed).tf_seed(purpose, self.cycle, *index)

    def generator(self, purpose: str, *index: int) -> np.random.Generator:
        """A NumPy generator for one random choice of this cycle (as `seed`)."""
        return RandomStreams(self.config.random_seed).generator(purpose, self.cycle, *index)

    def keep(self, name: str, build: Callable[[], Any]) -> Any:
        """``build()``, made once and reused while the teacher stays the same object.

        Objectives are made this way so that the training step is traced once, not once
        per cycle (see `KeptObjects`). Without a loop's `KeptObjects`, builds every time.
        """
        if self.kept is None:
            return build()
        return self.kept.get(name, build, self.teacher)


class Method:
    """A continual-learning method; subclasses live one per file in this package.

    A method declares what it keeps between cycles (class attributes), which objective each
    cycle trains with (`objective`, `weight`) and what it computes after a cycle and reloads on
    resume (`after_cycle`, `restore`). The cycle loop does the rest the same way for all:
    training with early stopping, testing, exemplar selection (`--selection`,
    `--exemplar_size`) for methods that keep exemplars, the teacher, checkpoints.

    Class attributes:
        name: The `--method` name.
        keeps_exemplars: Select exemplars after each cycle.
        replays_exemplars: Mix the kept exemplars into the next cycle's training batches.
        retrains_from_scratch: Start every cycle from a new model on all periods so far.
        trains_with_dropout: Train with `--dropout_rate` (False: dropout 0).
        plain_loss: Trains on cross-entropy alone in every cycle (so it also works with
            training loops that have no objective, such as GRU4Rec's session-parallel one).
        uses_teacher: Gets the previous cycle's frozen model as ``ctx.teacher``.
        options: This method's own options (flags refused with other methods); it reads
            them from the config by name.
        search_space: What ``python -m ader_tf.tune`` tunes for it (`ader_tf.search_space`):
            ranges of its options or of the Config fields it reads; empty: nothing to tune.
        shares_first_cycle: Its first cycle trains as every method with its dropout setting
            does (cross-entropy, nothing measured along the way), so it can start from the
            checkpoint of another run's first cycle (``--warm_start``) and then do its own
            end of cycle (exemplars, importance) from there.
    """

    name: ClassVar[str] = ""
    keeps_exemplars: ClassVar[bool] = False
    replays_exemplars: ClassVar[bool] = False
    retrains_from_scratch: ClassVar[bool] = False
    trains_with_dropout: ClassVar[bool] = True
    plain_loss: ClassVar[bool] = False
    uses_teacher: ClassVar[bool] = False
    options: ClassVar[tuple[Option, ...]] = ()
    search_space: ClassVar[tuple[Param, ...]] = ()
    shares_first_cycle: ClassVar[bool] = True

    def __init__(self, config: Any) -> None:
        from ader_tf.objectives import CrossEntropy

        self.config = config
        self.cross_entropy = CrossEntropy()

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Refuses flags that make no sense with this method.

        Raises:
            ValueError: naming the flags and why.
        """
        if not cls.keeps_exemplars:
            ablations = exemplar_flags_set(config)
            if ablations:
                raise ValueError(
                    f"--method={cls.name} keeps no exemplars, so --{' --'.join(ablations)} has "
                    "no effect"
                )

    @property
    def dropout_rate(self) -> float:
        return self.config.dropout_rate if self.trains_with_dropout else 0.0

    def weight(self, ctx: CycleContext) -> float:
        """The weight of this cycle's continual term (logged as ``lambda``); 0 if none."""
        return 0.0

    def objective(self, ctx: CycleContext) -> Objective:
        """What this cycle trains on: cross-entropy in the first cycle, then `continual`."""
        if ctx.previous is None:
            return self.cross_entropy
        return self.continual_objective(ctx)

    def continual_objective(self, ctx: CycleContext) -> Objective:
        """The objective of cycles after the first; cross-entropy unless overridden."""
        return self.cross_entropy

    def after_cycle(self, ctx: CycleContext) -> None:
        """Computes and saves what the method keeps from a finished cycle (after exemplars)."""

    def restore(self, ctx: CycleContext) -> None:
        """Reloads what `after_cycle` saved for ``ctx.cycle`` (a resumed run)."""


def refuse_flags(config: Any, names: tuple[str, ...], why: str) -> None:
    """Raises ValueError naming those of the boolean flags ``names`` that are set.

    Args:
        config: The run's Config.
        names: Flags the method would ignore.
        why: Completes "--method=NAME ..., so --FLAG has no effect".
    """
    for name in names:
        if getattr(config, name):
            raise ValueError(f"--method={config.method} {why}, so --{name} has no effect")


def refuse_distribution(config: Any, why: str) -> None:
    """Raises ValueError unless the run is on one device: ``why`` completes "--method=NAME
    ..., but under --distribution_strategy=X a replica sees only its share of it"."""
    if config.distribution_strategy != "none":
        raise ValueError(
            f"--method={config.method} {why}, but under "
            f"--distribution_strategy={config.distribution_strategy} a replica sees only its "
            "share of it; use --distribution_strategy=none"
        )


def exemplar_flags_set(config: Any) -> list[str]:
    """The exemplar flags that differ from their default (meaningless without exemplars)."""
    return [
        name
        for name, on in (
            ("disable_distillation", config.disable_distillation),
            ("equal_exemplar", config.equal_exemplar),
            ("fix_lambda", config.fix_lambda),
            ("selection", config.selection != "herding"),
        )
        if on
    ]


def adaptive_lambda(
    lambda_base: float, max_item_prev: int, max_item: int, num_exemplars: int, num_train: int
) -> float:
    """lambda_t = lambda_base * sqrt((|I_{t-1}| / |I_t|) * (|E_{t-1}| / |D_t|)).

    More old knowledge relative to new data (more previous items, more exemplars per new
    example) weighs the exemplar term more.
    """
    if max_item <= 0 or num_train <= 0:
        raise ValueError(f"need max_item > 0 and num_train > 0, got {max_item}, {num_train}")
    return lambda_base * math.sqrt((max_item_prev / max_item) * (num_exemplars / num_train))
