"""Run configuration: one dataclass holding every flag of the original, plus ours.

Defaults equal the original's (``main.py`` of doublemul/ADER) except ``dataset``, which
defaults to the built-in sample so that ``python main.py`` works on a fresh machine.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

DATASETS = ("DIGINETICA", "YOOCHOOSE", "sample")
SELECTIONS = ("herding", "loss", "random")
STRATEGIES = ("none", "mirrored", "multi_worker")

# Fields that do not change any number a run produces (where it writes, how far it goes,
# how it reports); they are left out of the fingerprint that guards resumed runs.
_NOT_FINGERPRINTED = frozenset(
    {"data_dir", "results_dir", "cycles", "export_k", "export_saved_models", "progress",
     "distribution_strategy", "test_batch"}
)


@dataclasses.dataclass(frozen=True)
class Config:
    """Everything a continual-learning run needs. See ``main.py`` for each flag's help."""

    dataset: str = "sample"
    save_dir: str = "ADER"
    # Exemplars
    exemplar_size: int = 30000
    lambda_: float = 0.8
    # Baselines
    finetune: bool = False
    dropout: bool = False
    ewc: bool = False
    joint: bool = False
    ewc_sample_num: int = 1000
    # Ablations
    selection: str = "herding"
    disable_distillation: bool = False
    equal_exemplar: bool = False
    fix_lambda: bool = False
    # Training
    num_epochs: int = 100
    batch_size: int = 256
    test_batch: int = 64
    lr: float = 5e-4
    num_blocks: int = 2
    num_heads: int = 1
    stop: int = 5
    random_seed: int = 0
    hidden_units: int = 150
    maxlen: int = 50
    dropout_rate: float = 0.3
    l2_emb: float = 0.0
    # Added by ader_tf
    data_dir: str = "data"
    results_dir: str = "results"
    cycles: int = 0  # 0 = all cycles the data has
    export_k: int = 20
    export_saved_models: bool = True
    distribution_strategy: str = "none"
    valid_portion: float = 0.1
    # The original's dropouts share one op seed, so their masks coincide at every step
    # (see SASRecEncoder); False draws independent masks.
    tied_dropout: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        validate(self)

    @property
    def method(self) -> str:
        """The continual method this config runs (see ``ader_tf.continual.methods``)."""
        for name in ("finetune", "dropout", "ewc", "joint"):
            if getattr(self, name):
                return name
        return "er" if self.disable_distillation else "ader"

    @property
    def run_name(self) -> str:
        """``<DATASET>-<save_dir>``, the original's results folder name."""
        return f"{self.dataset}-{self.save_dir}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def fingerprint(self) -> str:
        """Short hash of every field that changes results, to refuse resuming another run."""
        relevant = {k: v for k, v in self.to_dict().items() if k not in _NOT_FINGERPRINTED}
        blob = json.dumps(relevant, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def validate(config: Config) -> None:
    """Rejects invalid values and combinations before any work starts.

    Raises:
        ValueError: with a message naming the flag(s) and the value received.
    """
    if config.dataset not in DATASETS:
        raise ValueError(f"--dataset must be one of {DATASETS}, got {config.dataset!r}")
    if config.selection not in SELECTIONS:
        raise ValueError(f"--selection must be one of {SELECTIONS}, got {config.selection!r}")
    if config.distribution_strategy not in STRATEGIES:
        raise ValueError(
            f"--distribution_strategy must be one of {STRATEGIES}, "
            f"got {config.distribution_strategy!r}"
        )
    methods = [m for m in ("finetune", "dropout", "ewc", "joint") if getattr(config, m)]
    if len(methods) > 1:
        raise ValueError(f"choose at most one baseline; got --{' --'.join(methods)}")
    if methods and methods[0] != "ewc":
        ablations = [
            name for name, on in (
                ("disable_distillation", config.disable_distillation),
                ("equal_exemplar", config.equal_exemplar),
                ("fix_lambda", config.fix_lambda),
                ("selection", config.selection != "herding"),
            ) if on
        ]
        if ablations:
            raise ValueError(
                f"--{methods[0]} keeps no exemplars, so --{' --'.join(ablations)} has no effect"
            )
    if config.ewc and config.disable_distillation:
        raise ValueError("--ewc replays no exemplars, so --disable_distillation has no effect")
    positive = ("exemplar_size", "num_epochs", "batch_size", "test_batch", "num_blocks",
                "num_heads", "stop", "hidden_units", "maxlen", "export_k", "ewc_sample_num")
    for name in positive:
        if getattr(config, name) <= 0:
            raise ValueError(f"--{name} must be positive, got {getattr(config, name)}")
    if config.hidden_units % config.num_heads:
        raise ValueError(
            f"--hidden_units ({config.hidden_units}) must be divisible by --num_heads "
            f"({config.num_heads})"
        )
    if not 0.0 <= config.dropout_rate < 1.0:
        raise ValueError(f"--dropout_rate must be in [0, 1), got {config.dropout_rate}")
    if config.lr <= 0 or config.lambda_ < 0 or config.l2_emb < 0:
        raise ValueError("--lr must be positive and --lambda_, --l2_emb non-negative")
    if config.cycles < 0:
        raise ValueError(f"--cycles must be >= 0 (0 = all), got {config.cycles}")
