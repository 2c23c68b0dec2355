"""MirroredStrategy over two logical CPU devices gives the single-device loss and update.

The devices must be configured before TensorFlow initialises, so the comparison runs in a child
process (this file run as a script) and the test reads its JSON report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(_HERE)
# distill covers the current-row CE and an exemplar mean (replay has the same structure);
# ewc adds the global penalty term. Each mode costs two model builds and traces.
_MODES = ["distill", "ewc", "agem", "derpp", "distill-adam"]


def _compare(mode: str) -> dict:
    """Runs one step of `mode` on 1 and on 2 replicas; returns loss and weight differences."""
    import keras
    import numpy as np
    import tensorflow as tf

    from ader_tf.models.recommender import make_optimizer
    from tests.helpers import left_padded, randomize
    from tests.helpers import tiny_sasrec_model as tiny_model

    # "<mode>-adam": the fused Adam of `make_optimizer` under the strategy (lr 5e-4).
    adam = mode.endswith("-adam")
    mode = mode.removesuffix("-adam")

    from ader_tf.continual.importance import compute_fisher
    from ader_tf.continual.teacher import frozen_teacher
    from ader_tf.objectives import (
        CrossEntropy,
        Distillation,
        GradientProjection,
        ImportancePenalty,
        LogitMatching,
        Replay,
        combine,
    )

    # 8 rows; exemplars last, so replica 0 gets 4 current rows and replica 1 gets 1 current
    # and 3 exemplar rows: per-replica means would differ from the global ones.
    rng = np.random.default_rng(0)
    ids = left_padded(rng, [1, 2, 6, 3, 4, 5, 2, 1], 6, 30)
    targets = rng.integers(1, 31, 8).astype(np.int32)
    is_exemplar = np.array([0, 0, 0, 0, 0, 1, 1, 1], np.float32)
    exemplar_index = np.array([-1, -1, -1, -1, -1, 2, 0, 1], np.int32)
    features = {"item_ids": ids, "is_exemplar": is_exemplar, "exemplar_index": exemplar_index}
    data = tf.data.Dataset.from_tensors((features, targets))

    fisher: dict = {}

    def build(strategy: tf.distribute.Strategy):
        with strategy.scope():
            model = tiny_model(seed=1)
            randomize(model, seed=1)
            model.set_max_item(28)
            # SGD: the update is linear in the gradient, so weights compare the gradients
            # themselves (Adam's first step, lr * g / (|g| + eps), amplifies float noise in
            # near-zero gradients).
            optimizer = make_optimizer(5e-4) if adam else keras.optimizers.SGD(0.5)
            model.compile(optimizer=optimizer)
            model.build_all(6)
        if mode == "distill":
            teacher = tiny_model(seed=2)
            randomize(teacher, seed=2)
            model.set_objective(combine(CrossEntropy(), Distillation(frozen_teacher(teacher, 20),
                                                                     0.7)))
        if mode == "ewc":
            # Same weights in both builds, so the Fisher information is computed once.
            if "state" not in fisher:
                fisher["state"] = compute_fisher(model, ids, np.minimum(targets, 28), batch_size=4)
            state = fisher["state"]
            # Move the anchor so that the penalty and its gradient are not zero.
            anchor = tuple(p + 0.05 for p in state.anchor)
            model.set_objective(combine(CrossEntropy(),
                                        ImportancePenalty(state.importance, anchor, 0.7)))
        if mode == "agem":
            model.set_objective(combine(CrossEntropy(), GradientProjection()))
        if mode == "derpp":
            top = np.tile(np.arange(5, dtype=np.int32), (3, 1))
            stored = np.tile(np.linspace(2.0, 1.0, 5, dtype=np.float32), (3, 1))
            model.set_objective(combine(CrossEntropy(), LogitMatching(top, stored, [28, 20, 25],
                                                                      0.7), Replay(0.5)))
        return model

    results = []
    for devices in (["/cpu:0"], ["/cpu:0", "/cpu:1"]):
        strategy = tf.distribute.MirroredStrategy(devices)
        model = build(strategy)
        before = [np.asarray(w) for w in model.trainable_variables]
        history = model.fit(data.map(lambda f, t: (f, tf.minimum(t, 28))), epochs=1, verbose=0)
        # Adam's first moment after one step is (1 - beta_1) g: the gradient itself, per weight.
        moments = [np.asarray(m) / 0.1 for m in model.optimizer._momentums] if adam else []
        results.append(
            (
                {k: float(v[-1]) for k, v in history.history.items()},
                [np.asarray(w) for w in model.trainable_variables],
                strategy.num_replicas_in_sync,
                moments,
            )
        )
    (single, w1, n1, g1), (mirrored, w2, n2, g2) = results
    update = max(float(np.abs(a - b).max()) for a, b in zip(w1, before, strict=True))
    report = {
        "replicas": [n1, n2],
        "single": single,
        "mirrored": mirrored,
        "max_weight_diff": max(float(np.abs(a - b).max()) for a, b in zip(w1, w2, strict=True)),
        "max_update": update,
    }
    if adam:
        report["max_gradient_diff"] = max(float(np.abs(a - b).max())
                                          for a, b in zip(g1, g2, strict=True))
        # Where |g| >= 1e-6 Adam's first step lr * g / (|g| + eps) is flat in g (see the test).
        report["max_weight_diff_clear_gradients"] = max(
            float(np.abs(a - b)[np.abs(g) >= 1e-6].max(initial=0.0))
            for a, b, g in zip(w1, w2, g1, strict=True))
    return report


def _whole_runs(data_dir: str, results_dir: str) -> dict:
    """ADER's tiny two-cycle run (dropout off) on one device and under MirroredStrategy over
    both logical CPUs: replicas, per-cycle (examples, first-step loss) of the first epoch, and
    the run folders."""
    import logging

    import tensorflow as tf

    from ader_tf.continual import runner
    from tests.helpers import first_epochs, tiny_config

    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    # The loop's and its learner's loggers (the epoch lines are the learner's).
    logging.getLogger("ader_tf.continual").addHandler(handler)
    logging.getLogger("ader_tf.continual").setLevel(logging.INFO)
    two_cpus = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {}
    for name in ("single", "mirrored"):
        lines.clear()
        config = tiny_config(data_dir, os.path.join(results_dir, name), num_epochs=1,
                             dropout_rate=0.0, distribution_strategy=name.replace("single",
                                                                                 "none"))
        if name == "mirrored":
            # `--distribution_strategy=mirrored` takes the machine's GPUs; here, the two CPUs.
            runner.distribution_strategy = lambda *args: two_cpus
        run = runner.ContinualRunner(config)
        run.run()
        epochs = first_epochs("\n".join(lines))  # keys become strings in the JSON report
        report[name] = {"replicas": run.strategy.num_replicas_in_sync, "epochs": epochs,
                        "folder": run.paths.root}
    return report


def _child(args: list[str]) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
    if args[0] == "runner":
        print(json.dumps(_whole_runs(*args[1:])))
    else:
        print(json.dumps({mode: _compare(mode) for mode in args}))


def _report(*args: str) -> dict:
    """Runs `_compare(mode)` (or `_whole_runs` for "runner" and its folders) in a fresh
    process.

    One process per mode: several MirroredStrategy instances in one process can pair up each
    other's collective ops (their instance keys collide), which aborts the later ones.
    """
    path = os.pathsep.join([_REPO, _HERE, os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONPATH=path)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=_REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("mode", _MODES)
def test_two_replicas_match_one_device(mode: str) -> None:
    result = _report(mode)[mode]
    assert result["replicas"] == [1, 2]
    assert set(result["single"]) == set(result["mirrored"])
    for name, value in result["single"].items():
        assert result["mirrored"][name] == pytest.approx(value, rel=1e-5, abs=1e-6), name
    if mode.endswith("-adam"):
        # Adam's first step is lr * g / (|g| + eps), whose slope in g is lr * eps / (|g| +
        # eps)^2, up to lr / eps = 5e4 at g = 0: a gradient that differs in float32 summation
        # order (two partial sums added, ~1e-9 here) moves such a weight by up to ~5e-5, and a
        # gradient within rounding of 0 can even flip the sign of its step (2 * lr = 1e-3).
        # So the gradients themselves (the first moment / (1 - beta_1)) are compared tightly,
        # and the weights where |g| >= 1e-6, where the slope is below lr * eps / 1e-12 = 5 (a
        # gradient difference of 1e-9 moves the weight by 5e-9).
        assert result["max_update"] > 1e-4
        assert result["max_gradient_diff"] < 1e-6
        assert result["max_weight_diff_clear_gradients"] < 1e-6
    else:
        assert result["max_update"] > 1e-3  # the step did move the weights
        assert result["max_weight_diff"] < 1e-6


@pytest.mark.slow
def test_whole_protocol_on_two_logical_devices(tiny_data_dir, tmp_path) -> None:
    """The runner under MirroredStrategy (the several-GPU path) trains, selects and evaluates
    like one device: each example once per epoch, the same first-step loss, metrics and
    exemplars (up to herding's near-ties)."""
    from tests.helpers import assert_runs_agree_up_to_float_order

    report = _report("runner", tiny_data_dir, str(tmp_path))
    single, mirrored = report["single"], report["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert set(single["epochs"]) == set(mirrored["epochs"]) == {"1", "2"}
    for cycle, (examples, loss) in single["epochs"].items():
        assert mirrored["epochs"][cycle][0] == examples
        # Same weights and rows; only float32 summation order differs (two partial sums).
        assert mirrored["epochs"][cycle][1] == pytest.approx(loss, rel=1e-5), cycle
    assert_runs_agree_up_to_float_order(single["folder"], mirrored["folder"], (1, 2))


if __name__ == "__main__":
    _child(sys.argv[1:])
