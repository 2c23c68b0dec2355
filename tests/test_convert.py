"""Conversion of reference TF1 checkpoints: the fixture, and other shapes written here."""

from __future__ import annotations

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from ader_tf.convert import infer_config, load_original_checkpoint
from tests.sasrec_reference import (
    random_reference_weights,
    reference_forward,
    sasrec_fixture,
    write_tf1_checkpoint,
)

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_cli_converts_the_fixture(tmp_path) -> None:
    fixture = sasrec_fixture()
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([_REPO, os.environ.get("PYTHONPATH", "")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "ader_tf.convert",
            f"--checkpoint={os.path.dirname(fixture['checkpoint'])}",
            f"--output_dir={tmp_path}",
            "--num_heads=1",
            "--k=7",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=_REPO,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "num_items=300 hidden_units=16 maxlen=10 num_blocks=2" in proc.stdout

    inputs = tf.constant(fixture["inputs"])
    served = tf.saved_model.load(str(tmp_path / "saved_model"))
    scores = served.signatures["scores"](item_ids=inputs)["scores"].numpy()
    np.testing.assert_allclose(scores, fixture["logits"], atol=1e-5, rtol=0)
    top = served.signatures["serving_default"](item_ids=inputs)["top_items"].numpy()
    np.testing.assert_array_equal(top, np.argsort(-fixture["logits"], axis=1)[:, :7] + 1)

    model = keras.models.load_model(str(tmp_path / "model.keras"))
    np.testing.assert_allclose(model.represent(inputs).numpy(), fixture["rep"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("num_items", "hidden_units", "maxlen", "num_blocks", "num_heads"),
    [(57, 12, 7, 3, 2), (20, 12, 5, 1, 3)],
)
def test_other_shapes_round_trip(
    tmp_path, num_items: int, hidden_units: int, maxlen: int, num_blocks: int, num_heads: int
) -> None:
    weights = random_reference_weights(num_items, hidden_units, maxlen, num_blocks, seed=3)
    prefix = str(tmp_path / "model.ckpt")
    write_tf1_checkpoint(prefix, weights)
    shapes = tf.train.load_checkpoint(prefix).get_variable_to_shape_map()
    assert infer_config(shapes) == {
        "num_items": num_items,
        "hidden_units": hidden_units,
        "maxlen": maxlen,
        "num_blocks": num_blocks,
    }
    model = load_original_checkpoint(prefix, num_heads=num_heads)
    assert model.encoder.num_heads == num_heads and model.max_item == num_items

    rng = np.random.default_rng(0)
    ids = np.zeros((9, maxlen), np.int32)
    for row, length in enumerate(rng.integers(1, maxlen + 1, 9)):
        ids[row, maxlen - length :] = rng.integers(1, num_items + 1, length)
    logits, rep = reference_forward(weights, ids, num_heads)
    np.testing.assert_allclose(model.represent(ids).numpy(), rep, atol=1e-4, rtol=1e-5)
    np.testing.assert_allclose(model.predict_logits(ids).numpy(), logits, atol=1e-4, rtol=1e-5)


def test_rejects_a_checkpoint_that_is_not_sasrec(tmp_path) -> None:
    prefix = str(tmp_path / "other.ckpt")
    write_tf1_checkpoint(prefix, {"foo/bar": np.zeros(3, np.float32)})
    with pytest.raises(ValueError, match="not a reference SASRec checkpoint"):
        load_original_checkpoint(prefix)
