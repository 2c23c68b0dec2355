"""The numpy transcription of the reference TF1 SASRec reproduces the parity fixture."""

from __future__ import annotations

import numpy as np

from tests.sasrec_reference import read_checkpoint, reference_forward, sasrec_fixture


def test_numpy_reference_reproduces_fixture() -> None:
    fixture = sasrec_fixture()
    weights = read_checkpoint(fixture["checkpoint"])
    logits, rep = reference_forward(
        weights, fixture["inputs"], num_heads=fixture["meta"]["num_heads"]
    )
    np.testing.assert_allclose(rep, fixture["rep"], atol=1e-5, rtol=0)
    np.testing.assert_allclose(logits, fixture["logits"], atol=1e-5, rtol=0)
