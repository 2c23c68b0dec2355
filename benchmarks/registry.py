"""What benchmarks/reproduce.py can run, derived from ader_tf's registries.

This is the one module of the reproduction scripts that imports ader_tf's lists of methods,
backbones and datasets: where ader_tf keeps them may change, and then only these imports do.
A run is named by a *run method*: a registered method (``METHODS``), or a variant of one run
with extra ``main.py`` flags (the paper's ablations, and ER with reservoir selection).
"""

from __future__ import annotations

from ader_tf.quiet import quiet_tensorflow

quiet_tensorflow()  # the methods import TensorFlow

from ader_tf.config import (  # noqa: E402
    DATASET_DEFAULTS,
    DATASETS,
    FLAG_METHODS,
    PAPER_METHODS,
)
from ader_tf.continual.learners import KNN_MODELS  # noqa: E402
from ader_tf.continual.methods import METHODS  # noqa: E402
from ader_tf.plugins import MODELS  # noqa: E402

__all__ = ["DATASETS", "KNN_MODELS", "KNN_RUN_METHODS", "MODELS", "PAPER_MODEL", "VARIANTS",
           "RUN_METHODS", "applies", "comparison_methods", "dataset_flags", "method_flags",
           "model_flags", "retrains_on_all_periods", "shares_first_cycle", "tunable_methods",
           "uses_teacher"]

# Variants of registered methods: the paper's ablations under its names for them, and ER with
# reservoir selection (ours).
VARIANTS: dict[str, tuple[str, tuple[str, ...]]] = {
    "er_herding": ("er", ()),
    "er_loss": ("er", ("--selection=loss",)),
    "er_random": ("er", ("--selection=random",)),
    "er_reservoir": ("er", ("--selection=reservoir",)),
    "ader_equal": ("ader", ("--equal_exemplar",)),
    "ader_fix": ("ader", ("--fix_lambda",)),
}
# Run method -> (registered method, extra main.py flags). ER runs only under its selection's
# name (er_herding, ...), as in the paper's ablation; every other method under its own.
RUN_METHODS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{name: (name, ()) for name in METHODS if name != "er"},
    **VARIANTS,
}
# ER's run methods in an all-method comparison: the paper's selection and ours.
COMPARED_ER = ("er_herding", "er_reservoir")
# What the untrained session-kNN backbones accept: the memory a method stands for (finetune:
# the last periods, joint: all of them, er_random: the exemplars' sessions plus the last).
# main.py refuses the others.
KNN_RUN_METHODS = ("finetune", "joint", "er_random")
# Each backbone's learning rate where it is not main.py's (SASRec's 5e-4, the protocol's).
# GRU4Rec and STAMP start from small embeddings without SASRec's sqrt(d) scaling and layer
# norm, and barely move at 5e-4 (DIGINETICA cycle 1, GRU4Rec under ADER: validation Recall@20
# 0.020 after 3 epochs, 0.029 after 6), so they use the STAMP paper's 5e-3 (3 epochs without
# dropout: GRU4Rec 0.317, STAMP 0.341). The session-kNN models are not trained.
LEARNING_RATES = {"gru4rec": 0.005, "stamp": 0.005, "stmp": 0.005}
# The backbone a run's name leaves out: the paper's (the published runs are named without it).
PAPER_MODEL = "sasrec"


def _selecting_flags(method: str) -> list[str]:
    """The main.py flags that choose a registered method.

    The paper's methods take the original's flags (``--ewc``, ``--disable_distillation`` for
    ER, none for ADER, main.py's default), as the published runs were started; the others
    take ``--method``.
    """
    if method not in PAPER_METHODS:
        return [f"--method={method}"]
    if method == "er":
        return ["--disable_distillation"]
    return [f"--{flag}" for flag, chosen in FLAG_METHODS.items() if chosen == method]


def method_flags(run_method: str) -> list[str]:
    """The main.py flags of a run method."""
    method, extra = RUN_METHODS[run_method]
    return [*_selecting_flags(method), *extra]


def applies(model: str, run_method: str) -> bool:
    """Whether main.py accepts this backbone with this run method."""
    return model not in KNN_MODELS or run_method in KNN_RUN_METHODS


def model_flags(model: str) -> list[str]:
    """The main.py flags of a backbone: the model, unless it is the paper's, and its lr."""
    chosen = [] if model == PAPER_MODEL else [f"--model={model}"]
    return chosen + ([f"--lr={LEARNING_RATES[model]}"] if model in LEARNING_RATES else [])


def dataset_flags(dataset: str) -> list[str]:
    """The paper's settings for ``dataset`` that differ from the others (its README's commands),
    given explicitly so that each run's command shows them."""
    return [f"--{name}={value}" for name, value in DATASET_DEFAULTS.get(dataset, {}).items()]


def uses_teacher(run_method: str) -> bool:
    """Whether the run method trains against a frozen copy of the previous cycle's model."""
    return METHODS[RUN_METHODS[run_method][0]].uses_teacher


def retrains_on_all_periods(run_method: str) -> bool:
    """Whether the run method keeps every past period to retrain on (Joint)."""
    return METHODS[RUN_METHODS[run_method][0]].retrains_from_scratch


def is_tunable(run_method: str) -> bool:
    """Whether the run method's method declares a search space (python -m ader_tf.tune)."""
    return bool(METHODS[RUN_METHODS[run_method][0]].search_space)


def shares_first_cycle(model: str, run_method: str) -> bool:
    """Whether the run can start from a first cycle trained once for every run that trains it
    the same (main.py ``--warm_start=shared``): a trained backbone and a method that measures
    nothing while cycle 1 trains."""
    return model not in KNN_MODELS and METHODS[RUN_METHODS[run_method][0]].shares_first_cycle


def comparison_methods() -> list[str]:
    """The run methods of an all-method comparison: every registered method once, ER under
    herding (the paper's) and reservoir selection; the paper's ablations are left out."""
    return [name for name in RUN_METHODS if name in METHODS or name in COMPARED_ER]


def tunable_methods() -> list[str]:
    """The registered methods that declare a search space, each tuned once (python -m
    ader_tf.tune --method=NAME): ER's values serve both of its selections."""
    return [name for name, method in METHODS.items() if method.search_space]
