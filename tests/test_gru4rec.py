"""GRU4Rec encoder: the shared encoder checks, all-padding rows, step == call, own arguments."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from ader_tf.models.gru4rec import GRU4RecEncoder
from tests.encoder_test_case import run_encoder_test
from tests.helpers import NUM_ITEMS, pad_sessions, tiny_gru4rec_encoder

SESSIONS = [[3], [4, 5], [6, 7, 8], [9, 10, 11, 12, 13, 14], [1, 2, 3, 4]]


@pytest.mark.parametrize(
    "init_kwargs",
    [
        {"num_layers": 2, "dropout_rate": 0.25, "embedding_dropout": 0.1},
        {"num_layers": 1, "embedding_dropout": 0.2},
    ],
    ids=["two-layers", "one-layer-embedding-dropout"],
)
def test_encoder_checks(tmp_path, init_kwargs: dict) -> None:
    base = {"num_items": NUM_ITEMS, "hidden_units": 8, "maxlen": 5, "seed": 5}
    run_encoder_test(GRU4RecEncoder, base | init_kwargs, tmp_path, learning_rate=2e-2)


def test_all_padding_row_gives_zeros() -> None:
    # The state starts at zero and padded steps leave it unchanged, whatever the other rows.
    encoder = tiny_gru4rec_encoder()
    vectors = encoder(pad_sessions([[], *SESSIONS], 6)).numpy()
    np.testing.assert_array_equal(vectors[0], 0.0)
    assert (np.abs(vectors[1:]).sum(axis=1) > 0).all()
    np.testing.assert_array_equal(encoder(np.zeros((1, 4), np.int32)).numpy(), 0.0)


def test_step_loop_equals_call() -> None:
    encoder = tiny_gru4rec_encoder(num_layers=3)
    for session in SESSIONS:
        states = encoder.initial_state(1)
        for item in session:
            output, states = encoder.step(np.array([item], np.int32), states)
        expected = encoder(np.array([session], np.int32)).numpy()
        np.testing.assert_allclose(output.numpy(), expected, atol=1e-6)
        np.testing.assert_allclose(states[-1].numpy(), expected, atol=1e-6)


def test_constructor_validation() -> None:
    """GRU4Rec's own arguments (the shared ones are checked in test_encoder.py)."""
    for kwargs, message in (
        ({"num_layers": 0}, "`num_layers` must be >= 1, got 0"),
        ({"embedding_dropout": -0.1}, "`embedding_dropout` must be in \\[0, 1\\), got -0.1"),
        ({"embedding_dropout": 1.0}, "`embedding_dropout` must be in \\[0, 1\\), got 1.0"),
    ):
        with pytest.raises(ValueError, match=message):
            GRU4RecEncoder(5, **kwargs)


def test_forward_pass_logs_no_onednn_bool_notice() -> None:
    """TensorFlow's C++ log would print an error-level notice ("oneDNN supports DT_BOOL only on
    platforms with AVX-512") at the first forward pass if a bool tensor went through oneDNN's
    transpose; a user can do nothing about it, so the encoder transposes ids instead. Run in a
    fresh process, so the C++ log (printed once per process) is this pass's own."""
    script = textwrap.dedent("""
        import numpy as np
        from tests.helpers import tiny_gru4rec_encoder
        encoder = tiny_gru4rec_encoder()
        print(encoder(np.array([[0, 1, 2], [3, 4, 0]], np.int32), training=True).shape)
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    result = subprocess.run([sys.executable, "-c", script], cwd=root, env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    assert "(2, 8)" in result.stdout
    assert "DT_BOOL" not in result.stderr, result.stderr
