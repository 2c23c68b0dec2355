"""`workers.lost_workers_reported`: a failed collective op says how to resume."""

from __future__ import annotations

import pytest
import tensorflow as tf

from ader_tf.continual.workers import WorkerLostError, WorkerRole, lost_workers_reported


def test_a_workers_failed_collective_becomes_worker_lost_with_its_first_line():
    role = WorkerRole("worker", 1, is_chief=False)
    cause = tf.errors.DeadlineExceededError(None, None, "Collective timed out\nstack trace")
    with pytest.raises(WorkerLostError) as raised, lost_workers_reported(role):
        raise cause
    message = str(raised.value)
    assert message.startswith("worker 1: lost the other workers (DeadlineExceededError: "
                              "Collective timed out)")
    assert "stack trace" not in message and "resume" in message
    assert raised.value.__cause__ is cause


def test_a_single_process_error_and_other_errors_pass_unchanged():
    cause = tf.errors.UnavailableError(None, None, "socket closed")
    single = WorkerRole(None, 0, is_chief=True)
    with pytest.raises(tf.errors.UnavailableError), lost_workers_reported(single):
        raise cause
    chief = WorkerRole("worker", 0, is_chief=True)
    with pytest.raises(ValueError), lost_workers_reported(chief):
        raise ValueError("not a collective op")
