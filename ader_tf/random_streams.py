"""Named random streams: each random choice of a run draws from a stream of its own.

A stream is keyed by the run's seed, the cycle, the name of its purpose and optional indices:
``("shuffle", epoch)``, ``("dropout", layer)``, ``("exemplar_selection",)``. The key is hashed
into the seed words of a NumPy generator, so two purposes never share a stream however their
indices are numbered. (Integer salts appended to ``[seed, cycle]`` did share them: epoch 3's
shuffle drew the numbers of the salt-3 exemplar selection.) Like named keys folded into a
JAX/Flax PRNG key, a new purpose needs only a new name: nothing else has to be renumbered.

The hash is SHA-256 of the key's JSON text rather than Python's ``hash`` (salted per process),
so a key draws the same numbers in every process, on every machine and after a resume.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

# What a run's state.json records; runs saved before named streams have no such entry and
# drew other numbers, so they cannot be resumed by this version (see `RunState`).
STREAMS_VERSION = 1

# Seeds handed to TensorFlow and Keras (initialisers, SeedGenerator states) stay in int32.
_TF_SEED_BOUND = 2**31


@dataclasses.dataclass(frozen=True)
class RandomStreams:
    """The random streams of one run, all derived from its ``--random_seed``.

    Attributes:
        seed: The run's seed.
    """

    seed: int

    def sequence(self, purpose: str, cycle: int, *index: int | str) -> np.random.SeedSequence:
        """The seed sequence of one purpose in ``cycle`` (re-usable: it never advances)."""
        if not purpose or not isinstance(purpose, str):
            raise ValueError(f"a random stream needs a purpose name, got {purpose!r}")
        key = json.dumps([int(self.seed), int(cycle), purpose, *index])
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return np.random.SeedSequence(list(np.frombuffer(digest[:16], dtype="<u4").tolist()))

    def generator(self, purpose: str, cycle: int, *index: int | str) -> np.random.Generator:
        """A NumPy generator at the start of one purpose's stream."""
        return np.random.default_rng(self.sequence(purpose, cycle, *index))

    def tf_seed(self, purpose: str, cycle: int, *index: int | str) -> int:
        """One integer seed in [0, 2**31) for TensorFlow or Keras, drawn from the stream."""
        return int(self.generator(purpose, cycle, *index).integers(_TF_SEED_BOUND))

    def tf_seed_pair(self, purpose: str, cycle: int, *index: int | str) -> tuple[int, int]:
        """Two such integers: the state of a Keras ``SeedGenerator`` or a stateless seed."""
        first, second = self.generator(purpose, cycle, *index).integers(_TF_SEED_BOUND, size=2)
        return int(first), int(second)
