"""Builds the neural backbones by name: the one place that maps `--model` to an encoder.

Tests, benchmarks and the continual learners all build encoders here, so a new backbone is
one more entry in `ENCODERS` and its own module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ader_tf.options import Option, positive

if TYPE_CHECKING:  # annotations only: the backbones' options need no TensorFlow (--help)
    from ader_tf.models.encoder import SessionEncoder

GRU4REC_TRAINING = ("prefix", "session_parallel")
_STAMP_SIGMOID = Option("stamp_sigmoid", False, "STAMP/STMP: sigmoid on the scores before the "
                        "softmax, as the paper writes (the authors' code has none).")

#: Each neural backbone's own options (flags refused with other backbones).
BACKBONE_OPTIONS: dict[str, tuple[Option, ...]] = {
    # Only speed should depend on it: the groups' rows are encoded apart and put back in
    # order, which changes float32 summation order and nothing else (tests/test_sasrec.py).
    "sasrec": (positive("length_groups", 4, "SASRec: encode each batch as this many groups of "
                        "rows of similar length, each trimmed of its own leading padding "
                        "(faster on long-tailed sessions; 1: one group)."),),
    "gru4rec": (
        positive("gru4rec_layers", 1, "GRU4Rec: stacked GRU layers."),
        Option("gru4rec_training", "prefix", "GRU4Rec: 'prefix' (the protocol's prefix examples "
               "and full softmax, works with every method) or 'session_parallel' (GRU4Rec's "
               "own mini-batches and sampled loss; with a method trained on cross-entropy "
               "alone).", choices=GRU4REC_TRAINING),
    ),
    "stamp": (_STAMP_SIGMOID,),
    "stmp": (_STAMP_SIGMOID,),
}


def _sasrec(settings: Any, **common: Any) -> SessionEncoder:
    from ader_tf.models.sasrec import SASRecEncoder

    return SASRecEncoder(
        num_blocks=settings.num_blocks, num_heads=settings.num_heads, l2_emb=settings.l2_emb,
        tied_dropout=settings.tied_dropout, length_groups=settings.length_groups, **common,
    )


def _gru4rec(settings: Any, **common: Any) -> SessionEncoder:
    from ader_tf.models.gru4rec import GRU4RecEncoder

    return GRU4RecEncoder(num_layers=settings.gru4rec_layers, **common)


def _stamp(attention: bool) -> Callable[..., SessionEncoder]:
    def build(settings: Any, **common: Any) -> SessionEncoder:
        from ader_tf.models.stamp import STAMPEncoder

        return STAMPEncoder(
            attention=attention,
            output_activation="sigmoid" if settings.stamp_sigmoid else "none", **common,
        )

    return build


#: Each neural backbone's builder: ``builder(settings, **common)`` with the arguments every
#: encoder takes in ``common`` and its own read from ``settings``.
ENCODERS: dict[str, Callable[..., SessionEncoder]] = {
    "sasrec": _sasrec,
    "gru4rec": _gru4rec,
    "stamp": _stamp(attention=True),
    "stmp": _stamp(attention=False),
}


def build_encoder(settings: Any, num_items: int, dropout_rate: float, seed: int,
                  init_items: int | None = None) -> SessionEncoder:
    """The ``settings.model`` backbone for ``num_items`` items.

    Args:
        settings: Any object with the run's model settings as attributes (a `Config`):
            ``model``, ``hidden_units``, ``maxlen`` and the chosen backbone's own.
        num_items: Rows of the item tables (besides the padding row).
        dropout_rate: The dropout rate to train with (0 for methods without dropout).
        seed: Seeds the initialisers and dropout generators.
        init_items: Fixes the initialiser's scale of the item rows (see `SessionEncoder`).

    Raises:
        ValueError: ``settings.model`` names no neural backbone.
    """
    if settings.model not in ENCODERS:
        raise ValueError(f"`model` must be one of {tuple(ENCODERS)}, got {settings.model!r}")
    return ENCODERS[settings.model](
        settings, num_items=num_items, init_items=init_items,
        hidden_units=settings.hidden_units, maxlen=settings.maxlen,
        dropout_rate=dropout_rate, seed=seed,
    )


def build_model(settings: Any, num_items: int, dropout_rate: float, seed: int,
                init_items: int | None = None) -> Any:
    """A compiled `SessionRecommender` around the backbone, every variable and slot built."""
    from ader_tf.models.recommender import SessionRecommender, make_optimizer

    model = SessionRecommender(build_encoder(settings, num_items, dropout_rate, seed, init_items))
    model.compile(optimizer=make_optimizer(settings.lr))
    model.build_all(settings.maxlen)
    return model
