"""GRU4Rec's session-parallel trainer: it lowers the loss with one compiled step."""

from __future__ import annotations

import pytest

from ader_tf.continual.session_parallel import SessionParallelTrainer
from ader_tf.data.examples import examples_from_sessions
from ader_tf.models.recommender import SessionRecommender, make_optimizer
from ader_tf.models.session_parallel import LOSSES
from tests.helpers import patterned_sessions
from tests.helpers import tiny_gru4rec_encoder as tiny_encoder


@pytest.mark.parametrize("loss", LOSSES)
def test_trainer_lowers_the_loss(loss: str) -> None:
    sessions = patterned_sessions(80)
    encoder = tiny_encoder(num_layers=1, hidden_units=16)
    model = SessionRecommender(encoder)
    examples = examples_from_sessions(sessions, encoder.maxlen)
    full_softmax_before = model.per_example_loss(examples.inputs, examples.targets).numpy().mean()

    trainer = SessionParallelTrainer(
        encoder, make_optimizer(2e-2), loss=loss, batch_size=8, n_sample=6, seed=0
    )
    losses = [trainer.train_epoch(sessions) for _ in range(4)]
    full_softmax_after = model.per_example_loss(examples.inputs, examples.targets).numpy().mean()
    assert losses[-1] < losses[0], losses
    assert full_softmax_after < 0.8 * full_softmax_before, (
        full_softmax_before,
        full_softmax_after,
    )
    assert trainer.train_step.experimental_get_tracing_count() == 1
