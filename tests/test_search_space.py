"""Every registered method's search space names what it can tune, with sane bounds."""

from __future__ import annotations

import dataclasses

import pytest

from ader_tf.config import Config
from ader_tf.continual.methods import METHODS, Method
from ader_tf.plugins import make_config
from ader_tf.search_space import Choice, FloatRange, check_space, suggest

FIELDS = [f.name for f in dataclasses.fields(Config)]
# What each method weighs its continual term with; the others have nothing of their own.
TUNED = {"ader": {"lambda_"}, "er": {"lambda_"}, "ewc": {"lambda_"}, "mas": {"lambda_"},
         "si": {"lambda_"}, "lwf": {"lambda_"}, "derpp": {"derpp_alpha", "derpp_beta"},
         "sacaisr": {"sacaisr_alpha", "sacaisr_max_p"}}


@pytest.mark.parametrize("name", list(METHODS))
def test_search_space_is_valid(name):
    method = METHODS[name]
    check_space(method, FIELDS)
    assert {p.name for p in method.search_space} == TUNED.get(name, set())
    for param in method.search_space:
        assert param.name != "exemplar_size"  # the memory budget is every method's
        if isinstance(param, FloatRange) and param.log:
            assert param.high / param.low >= 10  # a log range spans at least a decade
        for value in param.ends:  # every value a trial can draw makes a valid run
            assert getattr(make_config(method=name, **{param.name: value}),
                           param.name) == value


@pytest.mark.parametrize("space, message", [
    ((FloatRange("exemplar_size", 10, 100),), "never tuned"),
    ((FloatRange("no_such_option", 0.1, 1.0),), "neither its option nor a Config field"),
    ((FloatRange("lambda_", 0.1, 1.0), FloatRange("lambda_", 0.2, 2.0)), "twice"),
])
def test_check_space_refuses_what_cannot_be_tuned(space, message):
    class Bad(Method):
        name = "bad"
        search_space = space

    with pytest.raises(ValueError, match=message):
        check_space(Bad, FIELDS)


def test_ranges_refuse_bad_bounds():
    with pytest.raises(ValueError, match="low < high"):
        FloatRange("lambda_", 1.0, 1.0)
    with pytest.raises(ValueError, match="low > 0"):
        FloatRange("lambda_", 0.0, 1.0, log=True)
    with pytest.raises(ValueError, match="distinct choices"):
        Choice("selection", ("herding",))


def test_suggest_asks_the_trial_for_each_parameter():
    class Trial:
        def __init__(self):
            self.asked = []

        def suggest_float(self, name, low, high, log):
            self.asked.append((name, low, high, log))
            return low

        def suggest_categorical(self, name, choices):
            self.asked.append((name, tuple(choices)))
            return choices[-1]

    trial = Trial()
    space = (FloatRange("lambda_", 0.1, 10.0, log=True), Choice("selection", ("loss", "random")))
    assert suggest(space, trial) == {"lambda_": 0.1, "selection": "random"}
    assert trial.asked == [("lambda_", 0.1, 10.0, True), ("selection", ("loss", "random"))]
