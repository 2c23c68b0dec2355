"""Method specs and the adaptive lambda of PROTOCOL 2.4."""

import math

import pytest

from ader_tf.config import Config
from ader_tf.continual.methods import adaptive_lambda, cycle_lambda, method_spec


def test_lambda_by_hand():
    # DIGINETICA-like numbers: 18,569 items before, 23,000 now, 27,750 exemplars, 30,000 rows.
    expected = 0.8 * math.sqrt((18569 / 23000) * (27750 / 30000))
    assert adaptive_lambda(0.8, 18569, 23000, 27750, 30000) == pytest.approx(expected)


@pytest.mark.parametrize(
    "flags, name, dropout, keeps, mode, adaptive",
    [
        ({}, "ader", 0.3, True, "distill", True),
        ({"disable_distillation": True}, "er", 0.3, True, "replay", True),
        ({"fix_lambda": True}, "ader", 0.3, True, "distill", False),
        ({"finetune": True}, "finetune", 0.0, False, "plain", False),
        ({"dropout": True}, "dropout", 0.3, False, "plain", False),
        ({"ewc": True}, "ewc", 0.0, True, "ewc", False),
        ({"joint": True}, "joint", 0.3, False, "plain", False),
    ],
)
def test_method_specs(flags, name, dropout, keeps, mode, adaptive):
    spec = method_spec(Config(**flags))
    assert (spec.name, spec.dropout_rate, spec.keeps_exemplars, spec.loss_mode,
            spec.adaptive_lambda) == (name, dropout, keeps, mode, adaptive)
    assert spec.joint == (name == "joint")


def test_cycle_lambda_per_method():
    assert cycle_lambda(method_spec(Config(finetune=True)), Config(), 10, 20, 5, 5) == 0.0
    assert cycle_lambda(method_spec(Config(ewc=True)), Config(ewc=True), 10, 20, 5, 5) == 0.8
    fixed = Config(fix_lambda=True, lambda_=0.5)
    assert cycle_lambda(method_spec(fixed), fixed, 10, 20, 5, 5) == 0.5
    assert cycle_lambda(method_spec(Config()), Config(), 10, 40, 5, 20) == pytest.approx(0.2)
