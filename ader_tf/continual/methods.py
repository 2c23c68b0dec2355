"""What each continual method does differently (PROTOCOL 2.3-2.6), derived from a Config."""

from __future__ import annotations

import dataclasses
import math

from ader_tf.config import Config


@dataclasses.dataclass(frozen=True)
class MethodSpec:
    """The behaviour of one method.

    Attributes:
        name: ader, er, finetune, dropout, ewc or joint.
        dropout_rate: the rate the model trains with (0 for Finetune and EWC, as the original).
        joint: train each cycle from scratch on all periods so far.
        keeps_exemplars: select exemplars after each cycle (ADER, ER and EWC, which draws its
            Fisher samples from them).
        loss_mode: the model's continual loss from cycle 2 on: "distill", "replay", "ewc" or
            "plain".
        adaptive_lambda: lambda_t follows PROTOCOL 2.4; otherwise lambda_t = lambda_.
    """

    name: str
    dropout_rate: float
    joint: bool
    keeps_exemplars: bool
    loss_mode: str
    adaptive_lambda: bool

    @property
    def replays_exemplars(self) -> bool:
        return self.loss_mode in ("distill", "replay")


def method_spec(config: Config) -> MethodSpec:
    """The MethodSpec of ``config`` (flags already validated by Config)."""
    name = config.method
    no_dropout = name in ("finetune", "ewc")
    loss_mode = {"ader": "distill", "er": "replay", "ewc": "ewc"}.get(name, "plain")
    return MethodSpec(
        name=name,
        dropout_rate=0.0 if no_dropout else config.dropout_rate,
        joint=name == "joint",
        keeps_exemplars=name in ("ader", "er", "ewc"),
        loss_mode=loss_mode,
        adaptive_lambda=name in ("ader", "er") and not config.fix_lambda,
    )


def adaptive_lambda(
    lambda_base: float, max_item_prev: int, max_item: int, num_exemplars: int, num_train: int
) -> float:
    """lambda_t = lambda_base * sqrt((|I_{t-1}| / |I_t|) * (|E_{t-1}| / |D_t|)).

    More old knowledge relative to new data (more previous items, more exemplars per new
    example) weighs distillation more.
    """
    if max_item <= 0 or num_train <= 0:
        raise ValueError(f"need max_item > 0 and num_train > 0, got {max_item}, {num_train}")
    return lambda_base * math.sqrt((max_item_prev / max_item) * (num_exemplars / num_train))


def cycle_lambda(spec: MethodSpec, config: Config, max_item_prev: int, max_item: int,
                 num_exemplars: int, num_train: int) -> float:
    """The exemplar/penalty weight of one cycle (0 where the method has none)."""
    if spec.loss_mode == "plain":
        return 0.0
    if spec.adaptive_lambda:
        return adaptive_lambda(config.lambda_, max_item_prev, max_item, num_exemplars, num_train)
    return config.lambda_
