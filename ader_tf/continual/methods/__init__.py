"""Continual-learning methods, one file each, found by name in `METHODS`.

To add a method: write a `Method` subclass in a file of this package, add it to `METHODS`
below, and test its defining behaviour in `tests/`. `--method=NAME` then runs it.

Importing this package imports no TensorFlow (`python main.py --help` reads `METHODS`): a
method's file imports what needs it inside the functions that use it.
"""

from __future__ import annotations

from typing import Any

from ader_tf.continual.methods.ader import ADER
from ader_tf.continual.methods.agem import AGEM
from ader_tf.continual.methods.base import CycleContext, KeptObjects, Method, adaptive_lambda
from ader_tf.continual.methods.derpp import DERPP
from ader_tf.continual.methods.dropout import Dropout
from ader_tf.continual.methods.er import ER
from ader_tf.continual.methods.ewc import EWC
from ader_tf.continual.methods.finetune import Finetune
from ader_tf.continual.methods.joint import Joint
from ader_tf.continual.methods.lwf import LwF
from ader_tf.continual.methods.mas import MAS
from ader_tf.continual.methods.sacaisr import SACAISR
from ader_tf.continual.methods.si import SI

METHODS: dict[str, type[Method]] = {
    cls.name: cls
    for cls in (ADER, ER, Finetune, Dropout, EWC, Joint, LwF, AGEM, MAS, DERPP, SACAISR, SI)
}


def method_class(name: str) -> type[Method]:
    """The method registered as ``name``.

    Raises:
        ValueError: naming the known methods.
    """
    if name not in METHODS:
        raise ValueError(f"--method must be one of {tuple(METHODS)}, got {name!r}")
    return METHODS[name]


def make_method(config: Any) -> Method:
    """The method of ``config`` (its flags already checked by the Config)."""
    return method_class(config.method)(config)


__all__ = ["METHODS", "CycleContext", "KeptObjects", "Method", "adaptive_lambda", "make_method",
           "method_class"]
